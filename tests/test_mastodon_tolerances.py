"""Where Mastodon is more tolerant than we were for no gain, we are as tolerant as it is
(docs/decisions.md, "fediverse (issue 14): a valid JSON-LD context and Mastodon's
tolerances"), and each tolerance has its limit tested beside it: the signature time
window (both signature kinds), a ``Digest`` header listing several algorithms, and the
inbox's media type."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from federation.signatures import (
    IncomingRequest,
    SignatureError,
    digest_header,
    http_date,
    verify_request,
)
from models.federation import InboxItem
from server.web.current import resources_of
from tests import test_signatures as cavage
from tests import test_signatures_rfc9421 as rfc
from tests.test_inbox import fixture, make_scene, settings, signed  # noqa: F401 (fixture)

NOW = cavage.NOW
HOUR = timedelta(hours=1)


def cavage_request(
    names: str,
    *,
    date: datetime | None = None,
    params: dict[str, int] | None = None,
    digest: str | None = None,
    algorithm: str = "hs2019",
) -> IncomingRequest:
    """A draft-cavage signed POST built by hand: ``names`` are the signed headers and
    ``params`` the ``created``/``expires`` parameters of the Signature header."""
    params = params or {}
    headers = {
        "Host": "music.example",
        "Date": http_date(date or NOW),
        "Digest": digest_header(cavage.BODY) if digest is None else digest,
    }
    lines = []
    for name in names.split():
        if name == "(request-target)":
            lines.append("(request-target): post /inbox")
        elif name in ("(created)", "(expires)"):
            lines.append(f"{name}: {params[name[1:-1]]}")
        else:
            lines.append(f"{name}: {headers[name.title()]}")
    message = "\n".join(lines).encode()
    value = cavage.KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
    extra = "".join(f",{key}={number}" for key, number in params.items())
    headers["Signature"] = (
        f'keyId="{cavage.KEY_ID}",algorithm="{algorithm}",headers="{names}"{extra},'
        f'signature="{base64.b64encode(value).decode()}"'
    )
    return IncomingRequest("POST", "/inbox", headers, cavage.BODY)


async def verify(request: IncomingRequest) -> None:
    await verify_request(request, cavage.lookup_for(cavage.KEY), actor=cavage.ACTOR, now=NOW)


POST_NAMES = "(request-target) host date digest"


def ago(delta: timedelta) -> int:
    return int((NOW - delta).timestamp())


# --- the time window: Mastodon's app/lib/signed_request.rb -------------------------------


async def test_a_date_signature_with_a_twelve_hour_expiry_holds_for_twelve_hours_and_one() -> None:
    """A Date 12.5 h old whose signed ``(expires)`` is 12 h after it is still good (an hour
    of clock skew); at 13.5 h it is refused."""
    names = POST_NAMES + " (expires)"
    date = NOW - timedelta(hours=12, minutes=30)
    await verify(cavage_request(names, date=date, params={"expires": ago(timedelta(minutes=30))}))
    date = NOW - timedelta(hours=13, minutes=30)
    late = cavage_request(names, date=date, params={"expires": ago(timedelta(hours=1, minutes=30))})
    with pytest.raises(SignatureError, match="expired"):
        await verify(late)


async def test_an_expiry_beyond_twelve_hours_is_cut_to_twelve() -> None:
    names = POST_NAMES + " (expires)"
    date = NOW - timedelta(hours=13, minutes=30)
    await_later = {"expires": ago(timedelta(hours=-24))}  # a day from now: capped at 12 h
    with pytest.raises(SignatureError, match="Date header is outside the window"):
        await verify(cavage_request(names, date=date, params=await_later))


async def test_a_bare_date_lives_five_minutes_plus_the_hour_of_skew() -> None:
    """Without ``expires`` a signature lives five minutes, plus the hour of skew: a Date
    64 minutes old is good, 66 minutes old is not, and neither is one 13 h old."""
    await verify(cavage_request(POST_NAMES, date=NOW - timedelta(minutes=64)))
    for old in (timedelta(minutes=66), timedelta(hours=13)):
        with pytest.raises(SignatureError, match="Date header is outside the window"):
            await verify(cavage_request(POST_NAMES, date=NOW - old))


async def test_an_unsigned_expires_does_not_lengthen_the_window() -> None:
    """An ``expires`` parameter that ``(expires)`` does not cover could be changed by
    anybody replaying the request: it is not taken."""
    date = NOW - timedelta(hours=2)
    request = cavage_request(POST_NAMES, date=date, params={"expires": ago(-HOUR)})
    with pytest.raises(SignatureError, match="Date header is outside the window"):
        await verify(request)


async def test_a_date_or_created_time_up_to_an_hour_ahead_is_clock_skew() -> None:
    await verify(cavage_request(POST_NAMES, date=NOW + timedelta(minutes=59)))
    with pytest.raises(SignatureError, match="Date header is in the future"):
        await verify(cavage_request(POST_NAMES, date=NOW + timedelta(minutes=61)))
    names = "(request-target) host (created) digest"
    await verify(cavage_request(names, params={"created": ago(timedelta(minutes=-59))}))
    with pytest.raises(SignatureError, match="created time is in the future"):
        await verify(cavage_request(names, params={"created": ago(timedelta(minutes=-61))}))


async def test_rfc9421_has_the_same_window() -> None:
    async def check(request: IncomingRequest) -> None:
        await verify_request(request, rfc.lookup_for(rfc.RSA_KEY), now=rfc.NOW)

    start = rfc.NOW - timedelta(hours=12, minutes=30)
    expires = f";expires={int((start + timedelta(hours=12)).timestamp())}"
    await check(rfc.signed(created=start, extra=expires))
    start = rfc.NOW - timedelta(hours=13, minutes=30)
    expires = f";expires={int((start + timedelta(hours=12)).timestamp())}"
    with pytest.raises(SignatureError, match="expired"):
        await check(rfc.signed(created=start, extra=expires))
    await check(rfc.signed(created=rfc.NOW - timedelta(minutes=64)))
    with pytest.raises(SignatureError, match="outside the window"):
        await check(rfc.signed(created=rfc.NOW - timedelta(minutes=66)))
    await check(rfc.signed(created=rfc.NOW + timedelta(minutes=59)))
    with pytest.raises(SignatureError, match="in the future"):
        await check(rfc.signed(created=rfc.NOW + timedelta(minutes=61)))


# --- Digest with several algorithms -------------------------------------------------------


def sha(algorithm: str, body: bytes) -> str:
    return base64.b64encode(hashlib.new(algorithm, body).digest()).decode()


async def test_a_digest_list_with_a_matching_sha_256_is_accepted() -> None:
    body = cavage.BODY
    for header in (
        f"SHA-512={sha('sha512', body)}, SHA-256={sha('sha256', body)}",
        f"sha-256={sha('sha256', body)},md5={sha('md5', body)}",
        f"Sha-256={sha('sha256', body)}",
    ):
        await verify(cavage_request(POST_NAMES, digest=header))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (f"SHA-512={sha('sha512', cavage.BODY)}", "no SHA-256 value"),
        (
            f"SHA-512={sha('sha512', cavage.BODY)}, SHA-256={sha('sha256', b'other')}",
            "does not match the body",
        ),
        (
            f"SHA-256={sha('sha256', b'other')}, SHA-256={sha('sha256', cavage.BODY)}",
            "does not match the body",
        ),
        ("SHA-256", "does not match the body"),
        ("", "no SHA-256 value"),
    ],
    ids=["no-sha-256", "wrong-sha-256-right-sha-512", "two-sha-256-one-wrong", "no-value", "empty"],
)
async def test_a_digest_list_without_a_right_sha_256_is_refused(header: str, reason: str) -> None:
    """Another algorithm that matches does not make up for a missing or wrong SHA-256."""
    with pytest.raises(SignatureError, match=reason):
        await verify(cavage_request(POST_NAMES, digest=header))


# --- the inbox's media type ---------------------------------------------------------------


async def inbox_items(app: Quart) -> int:
    async with resources_of(app).sessionmaker() as session:
        return int(await session.scalar(select(func.count(InboxItem.id))) or 0)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/activity+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
        "application/ld+json",
        "Application/Activity+JSON; charset=utf-8",
    ],
)
async def test_the_inbox_takes_the_activitypub_media_types(
    app: Quart, client: Client, content_type: str
) -> None:
    await make_scene(app)
    body, headers = signed(fixture("mastodon/follow.json"))
    headers["Content-Type"] = content_type
    response = await client.post("/inbox", data=body, headers=headers)
    assert response.status_code == 202, await response.get_data(as_text=True)
    assert await inbox_items(app) == 1


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded", None]
)
async def test_the_inbox_refuses_other_media_types_with_415_and_queues_nothing(
    app: Quart, client: Client, content_type: str | None
) -> None:
    await make_scene(app)
    body, headers = signed(fixture("mastodon/follow.json"))
    headers.pop("Content-Type")
    if content_type is not None:
        headers["Content-Type"] = content_type
    for path in ("/inbox", "/artists/the_quiet_hours/inbox", "/actor/inbox"):
        response = await client.post(path, data=body, headers=headers)
        assert response.status_code == 415
        assert "application/activity+json" in (await response.get_json())["error"]
    assert await inbox_items(app) == 0
