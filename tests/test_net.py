from __future__ import annotations

import pytest

from server.runtime.net import client_address, parse_networks

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        # an untrusted peer cannot claim another address
        ("203.0.113.5", "198.51.100.7", "203.0.113.5"),
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        # a client-supplied first hop is skipped past only through trusted hops
        ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("127.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2"),
        ("127.0.0.1", "", "127.0.0.1"),
        (None, None, "unknown"),
    ],
)
def test_client_address(remote: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(remote, forwarded, PROXIES) == expected
