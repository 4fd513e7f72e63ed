"""Bad input gets a clear 4xx and changes nothing: JSON beyond our limits, ids beyond
64 bits, NUL characters, URLs of schemes we never fetch (refused before any DNS query);
and a 500 that still happens is logged with its traceback and request id. The pure
rules (federation/safejson.py, federation/urls.py) are tested on their own first."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import func, select

from federation import safejson
from federation.urls import UnacceptableURL, checked_url, origin
from models import jobs
from models.catalogue import Playlist
from models.federation import InboxItem
from models.users import Role
from server.runtime.resources import Resources
from server.runtime.values import whole_number
from server.runtime.worker import JobContext, Worker, WorkerOptions
from server.services.payments import PaymentError, verify_signature
from server.services.remote_plays import parse_release_tracks
from server.web.current import resources_of
from tests.catalogue_fixtures import make_account
from tests.test_account_pages import log_in

# -- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        b"[]", b'{"a": [1, {"b": "[[[[{{{{"}]}', b"[" * 64 + b"]" * 64, b'"\\\\u0000"',
        b'"\\ud83c\\udfb5"', b"9223372036854775807", b"-9223372036854775808", b"1.5e300",
        b'{"a": 1, "a": 2}', b'"\\\\"',
    ],
)  # fmt: skip
def test_json_within_the_limits_is_parsed_as_usual(text: bytes) -> None:
    import json

    assert safejson.loads(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
        (b"[" * 100_000, "nested deeper than 64"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nested deeper than 64"),
        (b"9223372036854775808", "out of range"),
        (b"-9223372036854775809", "out of range"),
        (b"1" * 5000, "out of range"),
        (b"1e400", "out of range"),
        (b"NaN", "NaN is not JSON"),
        (b"[-Infinity]", "Infinity is not JSON"),
        (b'"\\u0000"', "NUL"),
        (b'"\\\\\\u0000"', "NUL"),
        (b'"\\ud800"', "surrogate"),
        (b'{"\\udfff": 1}', "surrogate"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"{", "not JSON"),
    ],
)
def test_json_beyond_the_limits_is_refused(text: bytes, reason: str) -> None:
    with pytest.raises(safejson.UnsafeJSON, match=reason):
        safejson.loads(text)
    with pytest.raises(safejson.UnsafeJSON, match="larger than 10 bytes"):
        safejson.loads(b" " * 11, max_bytes=10)


@pytest.mark.parametrize(
    "url",
    ["https://music.example/releases/1", "https://MUSIC.example:8443/a?b=c#d", "http://[::1]:80/"],
)
def test_acceptable_remote_urls(url: str) -> None:
    assert checked_url(url) == url


@pytest.mark.parametrize(
    ("url", "allow_http", "reason"),
    [
        ("file:///etc/passwd", True, "only https and http"),
        ("ftp://music.example/x", True, "only https and http"),
        ("javascript:alert(1)", True, "only https and http"),
        ("http://music.example/", False, "only https URLs"),
        ("https:music.example/x", True, "no host"),
        ("https:///x", True, "no host"),
        ("https://user@music.example/", True, "user name"),
        ("https://music.example:99999/", True, "not a valid URL"),
        ("https://music.example:/", True, "no valid port"),
        ("https://[::1/", True, "not a valid URL"),
        ("https://music.example/a b", True, "spaces or control"),
        ("https://music.example/\x00", True, "spaces or control"),
        ("https://music.example/" + "a" * 2048, True, "at most 2048"),
        ("", True, "non-empty string"),
    ],
)
def test_unacceptable_remote_urls(url: str, allow_http: bool, reason: str) -> None:
    with pytest.raises(UnacceptableURL, match=reason):
        checked_url(url, allow_http=allow_http)
    assert origin(url) is None or not allow_http  # origins are compared for http ids too


def test_origin_fills_in_default_ports() -> None:
    assert origin("https://Music.Example./a") == ("https", "music.example", 443)
    assert origin("http://music.example:8080") == ("http", "music.example", 8080)


@pytest.mark.parametrize(
    ("text", "low", "high", "expected"),
    [
        ("42", 0, 100, 42), ("0", 0, 100, 0), ("-3", -10, 10, -3), ("9223372036854775807", 0,
        2**63 - 1, 2**63 - 1), ("101", 0, 100, None), ("-3", 0, 10, None), ("²", 0, 10, None),
        ("\u0663", 0, 10, None), ("1_0", 0, 100, None), (" 7", 0, 10, None), ("", 0, 10, None),
        (None, 0, 10, None), ("9" * 20, 0, 2**63 - 1, None), ("+5", 0, 10, None),
    ],
)  # fmt: skip
def test_whole_numbers_are_ascii_digits_within_a_range(
    text: str | None, low: int, high: int, expected: int | None
) -> None:
    assert whole_number(text, low=low, high=high) == expected


@pytest.mark.parametrize("duration", [1e308, 2**63 - 1, "PT99999999999999999999H", -5, "P1Y"])
def test_absurd_durations_of_a_partner_track_are_unknown(duration: Any) -> None:
    release = {
        "id": "https://music.example/releases/1", "type": "OrderedCollection", "name": "R",
        "orderedItems": [{"type": "Audio", "id": "https://music.example/tracks/1", "name": "T",
                          "attributedTo": "https://music.example/artists/a",
                          "duration": duration}],
    }  # fmt: skip
    [track] = parse_release_tracks(release)[2]
    assert track.duration_ms == 0


# -- over HTTP ------------------------------------------------------------------------------

HOSTILE_BODIES = [
    b"[" * 50_000 + b"]" * 50_000,
    b'{"title": ' + b"9" * 5000 + b"}",
    b'{"title": "Evening", "public": 1e999}',
    b'{"title": "\xff\xfe"}',
    b'{"title": "a\\u0000b"}',
    b'{"title": "\\ud800"}',
    b'{"title": NaN}',
]


async def test_hostile_json_is_a_400_on_the_api_the_inbox_and_registration(
    app: Quart, client: Client
) -> None:
    lena = await make_account(app, "lena", Role.LISTENER)
    for body in HOSTILE_BODIES:
        response = await client.post(
            "/api/v1/me/playlists",
            data=body,
            headers={**lena.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (body[:60], await response.get_data(as_text=True))
        assert "not acceptable JSON" in (await response.get_json())["reason"]
        inbox = await client.post(
            "/inbox", data=body, headers={"Content-Type": "application/activity+json"}
        )
        assert inbox.status_code == 400, body[:60]
        assert (await inbox.get_json())["status"] == "refused"
        registration = await client.post(
            "/oauth/register", data=body, headers={"Content-Type": "application/json"}
        )
        assert registration.status_code == 400, body[:60]
        assert (await registration.get_json())["error"] == "invalid_client_metadata"
    async with resources_of(app).sessionmaker() as session:  # and nothing was stored
        assert await session.scalar(select(func.count()).select_from(Playlist)) == 0
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 0


async def test_ids_beyond_64_bits_are_a_404_before_any_route(client: Client) -> None:
    for path in [
        "/api/v1/tracks/9223372036854775808",
        "/api/v1/tracks/99999999999999999999999999",
        "/api/v1/releases/" + "9" * 5000,
        "/tracks/18446744073709551616",
        "/api/v1/tracks/\u0663",  # an Arabic-Indic digit: int() would take it
    ]:
        response = await client.get(path)
        assert response.status_code == 404, path[:60]
        assert "there is no" not in await response.get_data(as_text=True)  # no route reached
    largest = await client.get("/api/v1/tracks/9223372036854775807")
    assert largest.status_code == 404
    assert "there is no track 9223372036854775807" in (await largest.get_json())["reason"]
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    [parameter] = document["paths"]["/api/v1/tracks/{track_id}"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}


async def test_numbers_of_integer_columns_in_paths_stop_at_32_bits(
    app: Quart, client: Client
) -> None:
    lena = await make_account(app, "lena", Role.LISTENER)
    made = await client.post(
        "/api/v1/me/playlists", json={"title": "Evening"}, headers=lena.headers
    )
    playlist = (await made.get_json())["id"]
    for position in (2**31, 2**63 - 1):
        response = await client.delete(
            f"/api/v1/playlists/{playlist}/items/{position}", headers=lena.headers
        )
        assert response.status_code == 404, position
    inside = await client.delete(
        f"/api/v1/playlists/{playlist}/items/{2**31 - 1}", headers=lena.headers
    )
    assert inside.status_code == 404
    assert (await inside.get_json())["reason"] == "that place in the playlist is empty"
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    operation = document["paths"]["/api/v1/playlists/{playlist_id}/items/{position}"]["delete"]
    [position_schema] = [p["schema"] for p in operation["parameters"] if p["name"] == "position"]
    assert position_schema["maximum"] == 2**31 - 1


async def test_outbox_pages_out_of_range_are_a_400(app: Quart, client: Client) -> None:
    await make_account(app, "mira", Role.ARTIST, artist="aurora")
    for page in ["\u00b2", "0", "-1", "100001", "1e3", "9" * 30]:
        response = await client.get("/artists/aurora/outbox", query_string={"page": page})
        assert response.status_code == 400, page
    assert (await client.get("/artists/aurora/outbox?page=2")).status_code == 200


async def test_nul_in_the_path_query_or_form_is_a_400(app: Quart, client: Client) -> None:
    assert (await client.get("/api/v1/artists/a%00b")).status_code == 400
    assert (await client.get("/search?q=a%00b")).status_code == 400
    form = await client.post(
        "/oauth/token",
        data=b"grant_type=authorization_code&code=a%00b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400
    assert "NUL" in await form.get_data(as_text=True)


async def test_upload_parts_that_cannot_be_read_are_a_400(app: Quart, client: Client) -> None:
    mira = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    headers = {**mira.headers, "Content-Type": "multipart/form-data; boundary=zz"}

    def part(disposition: bytes, body: bytes = b"ID3") -> bytes:
        return b"--zz\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n" + body

    for body, reason in [
        (part(b'name="file"; filename="\xff\xfe.mp3"') + b"\r\n--zz--\r\n", "well-formed"),
        (part(b'name="file"; filename="a\x00b.mp3"') + b"\r\n--zz--\r\n", "NUL"),
        (part(b'name="artist"', b"a\x00b") + b"\r\n" + part(b'name="file"; filename="a.mp3"')
         + b"\r\n--zz--\r\n", "NUL"),
    ]:  # fmt: skip
        response = await client.post("/api/v1/uploads", data=body, headers=headers)
        assert response.status_code == 400, (body, await response.get_data(as_text=True))
        assert reason in (await response.get_json())["reason"]
    leftovers = list((resources_of(app).settings.media_dir).rglob("*"))
    assert [path for path in leftovers if path.is_file()] == []


async def test_a_csrf_token_that_is_not_ascii_is_refused(client: Client) -> None:
    await client.get("/login")  # sets the CSRF cookie
    response = await client.post("/login", form={"csrf_token": "é", "username": "x"})
    assert response.status_code == 403


def test_a_stripe_signature_that_is_not_ascii_does_not_match() -> None:
    now = 1_800_000_000
    with pytest.raises(PaymentError, match="does not match"):
        verify_signature(b"{}", f"t={now},v1=\u00e9\u00e9", "whsec_x", now)


class Resolutions:
    """A resolver that records every name asked for and answers none."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.names.append(host)
        raise OSError("no DNS in this test")


@pytest.fixture
def resolutions(app: Quart) -> Resolutions:
    spy = Resolutions()
    resources_of(app).fetcher._resolve = spy  # the guarded client's one resolver
    return spy


async def test_remote_uris_are_checked_before_any_lookup(
    app: Quart, client: Client, resolutions: Resolutions
) -> None:
    lena = await make_account(app, "lena", Role.LISTENER)
    for uri in [
        "file:///etc/passwd", "file:host.example/x", "ftp://music.example/x",
        "gopher://music.example/", "https://[::1/x", "https://user@music.example/r/1",
        "http://music.example/releases/1", "https:music.example",
    ]:  # fmt: skip
        release = await client.post(
            "/api/v1/remote-releases", json={"uri": uri}, headers=lena.headers
        )
        assert release.status_code == 422, (uri, await release.get_data(as_text=True))
        resolved = await client.get(
            "/api/v1/resolve", query_string={"q": uri}, headers=lena.headers
        )
        assert resolved.status_code == 422, uri
        follow = await client.post("/api/v1/follows", json={"account": uri}, headers=lena.headers)
        assert follow.status_code == 422, uri
    assert resolutions.names == []


async def test_an_https_release_uri_is_looked_up(
    app: Quart, client: Client, resolutions: Resolutions
) -> None:
    """The negative tests above are not passing for want of trying: https goes ahead."""
    lena = await make_account(app, "lena", Role.LISTENER)
    response = await client.post(
        "/api/v1/remote-releases",
        json={"uri": "https://music.example/releases/1"},
        headers=lena.headers,
    )
    assert response.status_code == 422
    assert "could not be resolved" in (await response.get_json())["reason"]
    assert resolutions.names == ["music.example"]


async def test_unreadable_basic_credentials_are_invalid_client(client: Client) -> None:
    for credentials in ["Basic ", "Basic", "Basic !!!", "Basic /w==", "Basic AAA"]:
        for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect"):
            response = await client.post(
                path,
                data=b"grant_type=authorization_code&code=x&token=x",
                headers={
                    "Authorization": credentials,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status_code in (400, 401), (credentials, path)
            assert (await response.get_json())["error"] == "invalid_client"


async def test_oauth_parameters_that_are_not_printable_ascii_are_invalid_request(
    app: Quart, client: Client
) -> None:
    await make_account(app, "olga", Role.LISTENER)
    assert (await log_in(client, "olga", "a long password")).status_code == 303
    for query in ("response_type=%1F", "response_type=code&state=%C3%A9", "scope=a%0Ab"):
        response = await client.get(f"/oauth/authorize?{query}")
        assert response.status_code == 400, query
        assert (await response.get_json())["error"] == "invalid_request"
    token = await client.post("/oauth/token", form={"grant_type": "authorization_code\x7f"})
    assert token.status_code == 400
    assert (await token.get_json())["error"] == "invalid_request"


async def test_remote_follow_of_nobody_is_a_404(client: Client) -> None:
    response = await client.post(
        "/artists/no%0Abody/remote-follow", form={"account": "@lena@music.example"}
    )
    assert response.status_code == 404


# -- a 500 that still happens ---------------------------------------------------------------


async def test_a_500_logs_its_traceback_with_the_request_id(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> Any:
        raise RuntimeError("the disk is on fire")

    app.add_url_rule("/api/v1/broken", "broken", broken)
    with caplog.at_level(logging.ERROR, logger="playfair.errors"):
        response = await app.test_client().get("/api/v1/broken")
    assert response.status_code == 500
    request_id = response.headers["X-Request-Id"]
    assert request_id
    assert request_id in (await response.get_json())["reason"]
    [record] = [r for r in caplog.records if r.name == "playfair.errors"]
    assert record.exc_info is not None and "the disk is on fire" in str(record.exc_info[1])
    assert record.fields == {"request_id": request_id}  # type: ignore[attr-defined]
    assert request_id in record.getMessage()
    assert "RuntimeError: the disk is on fire" in caplog.text


async def test_a_request_id_is_kept_only_when_it_is_a_plain_token(client: Client) -> None:
    for given, kept in [("abc-123.x", True), ("a" * 65, False), ("x y", False), ("é", False)]:
        response = await client.get("/healthz", headers={"X-Request-Id": given})
        assert (response.headers["X-Request-Id"] == given) is kept, given
        assert response.headers["X-Request-Id"]


async def test_a_failing_job_logs_its_traceback_with_its_id(
    resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(context: JobContext, payload: dict[str, object]) -> None:
        raise RuntimeError("the transcoder is on fire")

    async with resources.sessionmaker() as session:
        job = await jobs.enqueue(session, "broken", {})
        await session.commit()
    worker = Worker(resources, {"broken": broken}, WorkerOptions(lease=timedelta(seconds=30)))
    with caplog.at_level(logging.WARNING, logger="playfair.worker"):
        assert await worker.run_until_idle() == 1
    [record] = [r for r in caplog.records if r.exc_info]
    assert f"job {job.id} " in record.getMessage()
    assert "the transcoder is on fire" in str(record.exc_info[1])  # type: ignore[index]
