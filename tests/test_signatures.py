"""HTTP signatures: what we sign verifies, and every rule has its negative test."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from federation.signatures import (
    IncomingRequest,
    PublicKey,
    SignatureError,
    digest_header,
    http_date,
    sign_request,
    verify_request,
)

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ACTOR = "https://remote.example/users/alice"
KEY_ID = f"{ACTOR}#main-key"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BODY = b'{"type": "Follow", "actor": "https://remote.example/users/alice"}'


def pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def lookup_for(*keys: rsa.RSAPrivateKey, owner: str = ACTOR, calls: list[bool] | None = None):  # type: ignore[no-untyped-def]
    """A key store that serves the keys in turn: the first on a normal lookup, the next
    one after a refresh (a rotated key)."""

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        if calls is not None:
            calls.append(refresh)
        if key_id != KEY_ID:
            return None
        key = keys[min(int(refresh), len(keys) - 1)]
        return PublicKey(key_id, owner, pem(key))

    return lookup


def signed(
    body: bytes | None = BODY,
    key: rsa.RSAPrivateKey = KEY,
    now: datetime = NOW,
    method: str = "POST",
    url: str = "https://music.example/inbox",
) -> IncomingRequest:
    headers = sign_request(
        method,
        url,
        body,
        KEY_ID,
        key,
        now=now,
        headers={"Content-Type": "application/activity+json"},
    )
    return IncomingRequest(
        method, "/inbox" if method == "POST" else "/artists/a", headers, body or b""
    )


async def test_a_signed_post_verifies() -> None:
    request = signed()
    assert request.headers["Digest"] == digest_header(BODY)
    assert 'headers="(request-target) host date digest"' in request.headers["Signature"]
    key = await verify_request(request, lookup_for(KEY), actor=ACTOR, now=NOW)
    assert key.owner == ACTOR


async def test_a_signed_get_verifies() -> None:
    request = signed(body=None, method="GET", url="https://music.example/artists/a")
    assert "digest" not in request.headers["Signature"]
    await verify_request(request, lookup_for(KEY), now=NOW)


async def test_hs2019_with_created() -> None:
    created = int(NOW.timestamp())
    headers = {"Host": "music.example", "Digest": digest_header(BODY)}
    message = (
        f"(request-target): post /inbox\n(created): {created}\nhost: music.example\n"
        f"digest: {headers['Digest']}"
    ).encode()
    signature = base64.b64encode(KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    headers["Signature"] = (
        f'keyId="{KEY_ID}",algorithm="hs2019",created={created},'
        f'headers="(request-target) (created) host digest",'
        f'signature="{signature}"'
    )
    await verify_request(IncomingRequest("POST", "/inbox", headers, BODY), lookup_for(KEY), now=NOW)


async def test_a_rotated_key_is_fetched_again_once() -> None:
    calls: list[bool] = []
    await verify_request(signed(key=OTHER), lookup_for(KEY, OTHER, calls=calls), now=NOW)
    assert calls == [False, True]


def with_headers(request: IncomingRequest, **changes: str | None) -> IncomingRequest:
    headers = {k: v for k, v in request.headers.items()}
    for name, value in changes.items():
        name = name.replace("_", "-").title()
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return IncomingRequest(request.method, request.path, headers, request.body)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda r: with_headers(r, signature=None), "not signed"),
        (
            lambda r: IncomingRequest(r.method, r.path, r.headers, BODY + b" "),
            "Digest header does not match",
        ),
        (lambda r: with_headers(r, digest="SHA-256=AAAA"), "Digest header does not match"),
        (lambda r: with_headers(r, digest=None), "signed header 'digest' is missing|Digest"),
        (
            lambda r: with_headers(
                r,
                signature=r.headers["Signature"].replace(
                    "(request-target) host date digest", "host date digest"
                ),
            ),
            "must cover \\(request-target\\)",
        ),
        (
            lambda r: with_headers(
                r,
                signature=r.headers["Signature"].replace(
                    "(request-target) host date digest", "(request-target) host date"
                ),
            ),
            "must cover digest",
        ),
        (
            lambda r: with_headers(
                r, signature=r.headers["Signature"].replace("rsa-sha256", "hmac-sha256")
            ),
            "algorithm 'hmac-sha256' is not accepted",
        ),
        (
            lambda r: with_headers(
                r,
                signature=r.headers["Signature"].replace(
                    KEY_ID, "https://remote.example/users/nobody#main-key"
                ),
            ),
            "cannot be found",
        ),
        (
            lambda r: with_headers(r, date=http_date(NOW - timedelta(hours=2))),
            "does not verify|outside the window",
        ),
        (lambda r: with_headers(r, host="evil.example"), "does not verify"),
    ],
    ids=[
        "unsigned",
        "body-changed",
        "wrong-digest",
        "no-digest",
        "no-request-target",
        "digest-not-signed",
        "algorithm",
        "unknown-key",
        "old-date",
        "host-changed",
    ],
)
async def test_each_rule_refuses(make, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SignatureError, match=reason):
        await verify_request(make(signed()), lookup_for(KEY), actor=ACTOR, now=NOW)


async def test_a_date_outside_the_window_is_refused_even_when_signed() -> None:
    old = signed(now=NOW - timedelta(hours=2))
    with pytest.raises(SignatureError, match="Date header is outside the window"):
        await verify_request(old, lookup_for(KEY), now=NOW)


async def test_a_wrong_key_and_a_foreign_owner() -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        await verify_request(signed(key=OTHER), lookup_for(KEY), now=NOW)
    with pytest.raises(SignatureError, match="owner is not the activity's actor"):
        await verify_request(
            signed(), lookup_for(KEY, owner="https://other.example/u/bob"), actor=ACTOR, now=NOW
        )


@pytest.mark.parametrize("body", [BODY, None])
def test_our_signer_matches_httpsig_byte_for_byte(body: bytes | None) -> None:
    """We sign with `cryptography` for speed; httpsig is the reference implementation."""
    import httpsig

    url = "https://remote.example/users/bob/inbox?x=1"
    ours = sign_request("POST" if body else "GET", url, body, KEY_ID, KEY, now=NOW)
    names = ["(request-target)", "host", "date"] + (["digest"] if body else [])
    pem_bytes = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = httpsig.HeaderSigner(
        KEY_ID, pem_bytes, algorithm="rsa-sha256", headers=names, sign_header="signature"
    )
    unsigned = {k: v for k, v in ours.items() if k != "Signature"}
    reference = signer.sign(
        unsigned,
        host="remote.example",
        method="POST" if body else "GET",
        path="/users/bob/inbox?x=1",
    )
    assert ours["Signature"] == reference["signature"]
