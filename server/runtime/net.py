"""Which address a request came from, believing forwarded headers only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(
    remote_addr: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The peer's address, or the nearest untrusted hop of ``X-Forwarded-For``.

    Walking from the right skips our own proxies; the first address they did not add
    is the client as far as we can know. A client cannot spoof its way past this by
    sending its own header, because only hops added by trusted proxies are skipped.
    """
    peer = remote_addr or "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer
