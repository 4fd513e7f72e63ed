"""Mastodon's published HTTP signature test vectors (its
spec/requests/signature_verification_spec.rb, December 2023) as positive and negative
tests of our verifier: the key pair, headers and signatures are Mastodon's own data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization

from federation.signatures import IncomingRequest, PublicKey, SignatureError, verify_request

PRIVATE_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIEowIBAAKCAQEAqIAYvNFGbZ5g4iiK6feSdXD4bDStFM58A7tHycYXaYtzZQpI
eHXAmaXuZzXIwtrP4N0gIk8JNwZvXj2UPS+S07t0V9wNK94he01LV5EMz/GN4eNn
FmDL64HIEuKLvV8TvgjbUPRD6Y5X0UpKi2ZIFLSb96Q5w0Z/k7ntpVKV52y8kz5F
jr/O/0JuHryZe0yItzJh8kzFfeMf0EXzfSnaKvT7P9jhgC6uTre+jXyvVZjiHDrn
qvvucdI3I7DRfXo1OqARBrLjy+TdseUAjNYJ+OuPRI1URIWQI01DCHqcohVu9+Ar
+BiCjFp3ua+XMuJvrvbD61d1Fvig/9nbBRR+8QIDAQABAoIBAAgySHnFWI6gItR3
fkfiqIm80cHCN3Xk1C6iiVu+3oBOZbHpW9R7vl9e/WOA/9O+LPjiSsQOegtWnVvd
RRjrl7Hj20VDlZKv5Mssm6zOGAxksrcVbqwdj+fUJaNJCL0AyyseH0x/IE9T8rDC
I1GH+3tB3JkhkIN/qjipdX5ab8MswEPu8IC4ViTpdBgWYY/xBcAHPw4xuL0tcwzh
FBlf4DqoEVQo8GdK5GAJ2Ny0S4xbXHUURzx/R4y4CCts7niAiLGqd9jmLU1kUTMk
QcXfQYK6l+unLc7wDYAz7sFEHh04M48VjWwiIZJnlCqmQbLda7uhhu8zkF1DqZTu
ulWDGQECgYEA0TIAc8BQBVab979DHEEmMdgqBwxLY3OIAk0b+r50h7VBGWCDPRsC
STD73fQY3lNet/7/jgSGwwAlAJ5PpMXxXiZAE3bUwPmHzgF7pvIOOLhA8O07tHSO
L2mvQe6NPzjZ+6iAO2U9PkClxcvGvPx2OBvisfHqZLmxC9PIVxzruQECgYEAzjM6
BTUXa6T/qHvLFbN699BXsUOGmHBGaLRapFDBfVvgZrwqYQcZpBBhesLdGTGSqwE7
gWsITPIJ+Ldo+38oGYyVys+w/V67q6ud7hgSDTW3hSvm+GboCjk6gzxlt9hQ0t9X
8vfDOYhEXvVUJNv3mYO60ENqQhILO4bQ0zi+VfECgYBb/nUccfG+pzunU0Cb6Dp3
qOuydcGhVmj1OhuXxLFSDG84Tazo7juvHA9mp7VX76mzmDuhpHPuxN2AzB2SBEoE
cSW0aYld413JRfWukLuYTc6hJHIhBTCRwRQFFnae2s1hUdQySm8INT2xIc+fxBXo
zrp+Ljg5Wz90SAnN5TX0AQKBgDaatDOq0o/r+tPYLHiLtfWoE4Dau+rkWJDjqdk3
lXWn/e3WyHY3Vh/vQpEqxzgju45TXjmwaVtPATr+/usSykCxzP0PMPR3wMT+Rm1F
rIoY/odij+CaB7qlWwxj0x/zRbwB7x1lZSp4HnrzBpxYL+JUUwVRxPLIKndSBTza
GvVRAoGBAIVBcNcRQYF4fvZjDKAb4fdBsEuHmycqtRCsnkGOz6ebbEQznSaZ0tZE
+JuouZaGjyp8uPjNGD5D7mIGbyoZ3KyG4mTXNxDAGBso1hrNDKGBOrGaPhZx8LgO
4VXJ+ybXrATf4jr8ccZYsZdFpOphPzz+j55Mqg5vac5P1XjmsGTb
-----END RSA PRIVATE KEY-----
"""
KEY_ID = "https://remote.domain/users/bob#main-key"
NOW = datetime(2023, 12, 20, 10, 0, tzinfo=UTC)
DATE = "Wed, 20 Dec 2023 10:00:00 GMT"
GET_SIGNATURE = (
    "Z8ilar3J7bOwqZkMp7sL8sRs4B1FT+UorbmvWoE+A5UeoOJ3KBcUmbsh+k3wQwbP5gMNUrra9rEWabpasZGphLsbD"
    "xfbsWL3Cf0PllAc7c1c7AFEwnewtExI83/qqgEkfWc2z7UDutXc2NfgAx89Ox8DXU/fA2GG0jILjB6UpFyNugkY9"
    "rg6oI31UnvfVi3R7sr3/x8Ea3I9thPvqI2byF6cojknSpDAwYzeKdngX3TAQEGzFHz3SDWwyp3jeMWfwvVVbM38F"
    "xhvAnSumw7YwWW4L7M7h4M68isLimoT3yfCn2ucBVL5Dz8koBpYf/40w7QidClAwCafZQFC29yDOg=="
)
QUERY_SIGNATURE = (
    "SDMa4r/DQYMXYxVgYO2yEqGWWUXugKjVuz0I8dniQAk+aunzBaF2aPu+4grBfawAshlx1Xytl8lhb0H2MllEz16/t"
    "KY7rUrb70MK0w8ohXgpb0qs3YvQgdj4X24L1x2MnkFfKHR/J+7TBlnivq0HZqXm8EIkPWLv+eQxu8fbowLwHIVvRd"
    "/3t6FzvcfsE0UZKkoMEX02542MhwSif6cu7Ec/clsY9qgKahb9JVGOGS1op9Lvg/9y1mc8KCgD83U5IxVygYeYXaV"
    "Q6gixA9NgZiTCwEWzHM5ELm7w5hpdLFYxYOHg/3G3fiqJzpzNQAcCD4S4JxfE7hMI0IzVlNLT6A=="
)
POST_SIGNATURE = (
    "gmhMjgMROGElJU3fpehV2acD5kMHeELi8EFP2UPHOdQ54H0r55AxIpji+J3lPe+N2qSb/4H1KXIh6f0lRu8TGSsu1"
    "2OQmg5hiO8VA9flcA/mh9Lpk+qwlQZIPRqKP9xUEfqD+Z7ti5wPzDKrWAUK/7FIqWgcT/mlqB1R1MGkpMFc/q4CIs"
    "2OSNiWgA4K+Kp21oQxzC2kUuYob04gAZ7cyE/FTia5t08uv6lVYFdRsn4XNPn1MsHgFBwBMRG79ng3SyhoG4PrqBE"
    "i5q2IdLq3zfre/M6He3wlCpyO2VJNdGVoTIzeZ0Zz8jUscPV3XtWUchpGclLGSaKaq/JyNZeiYQ=="
)
OLD_SIGNATURE = (
    "G1NuJv4zgoZ3B/ZIjzDWZHK4RC+5pYee74q8/LJEMCWXhcnAomcb9YHaqk1QYfQvcBUIXw3UZ3Q9xO8F9y0i8G5mz"
    "JHfQ+OgHqCoJk8EmGwsUXJMh5s1S5YFCRt8TT12TmJZz0VMqLq85ubueSYBM7QtUE/FzFIVLvz4RysgXxaXQKzdnM6"
    "+gbUEEKdCURpXdQt2NXQhp4MAmZH3+0lQoR6VxdsK0hx0Ji2PNp1nuqFTlYqNWZazVdLBN+9rETLRmvGXknvg9jOxT"
    "TppBVWnkAIl26HtLS3wwFVvz4pJzi9OQDOvLziehVyLNbU61hky+oJ215e2HuKSe2hxHNl1MA=="
)


async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
    private = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
    public = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return (
        PublicKey(KEY_ID, "https://remote.domain/users/bob", public) if key_id == KEY_ID else None
    )


def request(
    method: str,
    path: str,
    signature: str,
    headers: str,
    *,
    date: str = DATE,
    body: bytes = b"",
    digest: str | None = None,
) -> IncomingRequest:
    values = {
        "Host": "www.example.com",
        "Date": date,
        "Signature": f'keyId="{KEY_ID}",algorithm="rsa-sha256",headers="{headers}",'
        f'signature="{signature}"',
    }
    if digest:
        values["Digest"] = digest
    return IncomingRequest(method, path, values, body)


async def test_mastodon_get() -> None:
    key = await verify_request(
        request("GET", "/activitypub/success", GET_SIGNATURE, "date host (request-target)"),
        lookup,
        now=NOW,
    )
    assert key.owner == "https://remote.domain/users/bob"


async def test_mastodon_get_with_query() -> None:
    await verify_request(
        request(
            "GET", "/activitypub/success?foo=42", QUERY_SIGNATURE, "date host (request-target)"
        ),
        lookup,
        now=NOW,
    )


async def test_mastodon_post_with_digest() -> None:
    await verify_request(
        request(
            "POST",
            "/activitypub/success",
            POST_SIGNATURE,
            "host date digest (request-target)",
            body=b"Hello world",
            digest="SHA-256=ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw=",
        ),
        lookup,
        actor="https://remote.domain/users/bob",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("incoming", "reason"),
    [
        (
            request(
                "GET", "/activitypub/success?foo=43", QUERY_SIGNATURE, "date host (request-target)"
            ),
            "does not verify",
        ),
        (
            request(
                "GET", "/activitypub/alternative-path", GET_SIGNATURE, "date host (request-target)"
            ),
            "does not verify",
        ),
        (
            request("POST", "/activitypub/success", GET_SIGNATURE, "date host (request-target)"),
            "does not verify",
        ),
        (
            request(
                "GET",
                "/activitypub/success",
                OLD_SIGNATURE,
                "date host (request-target)",
                date="Wed, 18 Dec 2023 10:00:00 GMT",
            ),
            "Date header is outside the window",
        ),
        (
            request(
                "GET",
                "/activitypub/success",
                GET_SIGNATURE,
                "date host (request-target)",
                date="wrong date",
            ),
            "is not a date",
        ),
    ],
    ids=["other-query", "other-path", "other-method", "older-than-a-day", "unparsable-date"],
)
async def test_mastodon_refusals(incoming: IncomingRequest, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        await verify_request(incoming, lookup, now=NOW)
