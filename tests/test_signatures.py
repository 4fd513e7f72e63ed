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
    parse_signature_params,
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


MASTODON = (
    'keyId="https://remote.example/users/alice#main-key",algorithm="rsa-sha256",'
    'headers="(request-target) host date digest",signature="c2lnbmVk+/=="'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (MASTODON, {"keyid": "https://remote.example/users/alice#main-key",
                    "algorithm": "rsa-sha256", "headers": "(request-target) host date digest",
                    "signature": "c2lnbmVk+/=="}),
        ('keyId="k", algorithm=hs2019 ,created=1732449600', {"keyid": "k", "algorithm": "hs2019",
                                                             "created": "1732449600"}),
        ('Signature keyId="k",signature="s"', {"keyid": "k", "signature": "s"}),
        ('KEYID="a \\\"quoted\\\" id",signature=""', {"keyid": 'a "quoted" id', "signature": ""}),
    ],
    ids=["mastodon", "tokens-and-spaces", "old-prefix", "quoted-pairs"],
)  # fmt: skip
def test_the_signature_header_is_read_by_the_auth_param_grammar(
    header: str, expected: dict[str, str]
) -> None:
    assert parse_signature_params(header) == expected


def test_a_plain_header_reads_as_httpsig_reads_it() -> None:
    """httpsig's parser (urllib's list splitting) is the independent reference for what a
    well-formed header means."""
    from httpsig.utils import parse_signature_header

    reference = {key.lower(): value for key, value in parse_signature_header(MASTODON).items()}
    assert parse_signature_params(MASTODON) == reference


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        'keyId="k",,signature="s"',
        'keyId="k",signature="s",',
        'keyId="k" signature="s"',
        'keyId="k',
        'keyId=k"x",signature="s"',
        'keyId="k",keyid="other",signature="s"',
        'keyId="k\r\n",signature="s"',
        'keyId="k\x00",signature="s"',
        'keyId=,signature="s"',
        '="k"',
        'key id="k"',
    ],
    ids=["empty", "blank", "empty-element", "trailing-comma", "no-comma", "unclosed-quote",
         "token-then-quote", "twice", "newline", "nul", "no-value", "no-name", "space-in-name"],
)  # fmt: skip
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match="Signature header"):
        parse_signature_params(header)


async def test_a_request_with_a_malformed_signature_header_is_refused() -> None:
    request = signed()
    broken = with_headers(request, signature=request.headers["Signature"] + ',keyId="again"')
    with pytest.raises(SignatureError, match=r"cannot be parsed: .* gives keyid twice"):
        await verify_request(broken, lookup_for(KEY), actor=ACTOR, now=NOW)
