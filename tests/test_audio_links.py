"""Signed audio links (server/services/media/links.py, server/web/audio_links.py): who
gets one, what a link serves in-process, and that nothing else opens it.

nginx checking the same links alone is in tests/test_nginx_site.py."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models.users import Role
from server.services.media import links
from server.services.media.links import LinkCheck, check_link, signed_link
from server.services.money import issue_vouchers, redeem_voucher
from server.web.app import create_app
from server.web.current import resources_of
from tests.catalogue_fixtures import Account, artist, make_account
from tests.conftest import TEST_SECRET, make_settings
from tests.test_stream_gate import Scene, scene
from tests.test_streaming import ready_track

__all__ = ["artist", "scene"]

SECRET = links.link_secret(TEST_SECRET)
KEY = "tracks/7/stream_mp3.mp3"
NOW = 1_800_000_000.0


def _split(link: str) -> tuple[str, str]:
    parts = urlsplit(link)
    return parts.path, parts.query


# -- the signature, pure ----------------------------------------------------------------


def test_a_link_checks_until_it_expires() -> None:
    link = signed_link(KEY, SECRET, now=NOW + 10, lifetime=3600)
    assert link is not None
    path, query = _split(link)
    assert path == "/audio/" + KEY
    expires = int(parse_qs(query)["expires"][0])
    # at least the lifetime, rounded up to a bucket: links made close together are equal
    assert NOW + 10 + 3600 <= expires < NOW + 10 + 3600 + links.BUCKET_SECONDS
    assert expires % links.BUCKET_SECONDS == 0
    assert signed_link(KEY, SECRET, now=NOW + 20, lifetime=3600) == link
    assert check_link(path, query, SECRET, now=NOW).result is LinkCheck.VALID
    assert check_link(path, query, SECRET, now=NOW).key == KEY
    assert check_link(path, query, SECRET, now=expires).result is LinkCheck.VALID
    assert check_link(path, query, SECRET, now=expires + 1).result is LinkCheck.EXPIRED


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p, q: (p.replace("7", "8"), q),  # another file
        lambda p, q: (p, q.replace("expires=", "expires=1")),  # a longer life
        lambda p, q: (p, q[:-2] + ("AA" if not q.endswith("AA") else "BB")),  # the signature
        lambda p, q: (p, q.split("&")[0]),  # no signature
        lambda p, q: (p, q.split("&")[1]),  # no time
        lambda p, q: (p, "expires=9999999999&" + q),  # the first time is the one read
        lambda p, q: (p, q.replace("md5=", "md5=%C3%A9")),
        lambda p, q: (p, q[:-1] + "\u00e9"),  # not ASCII
        lambda p, q: (p, "expires=-5&" + q.split("&")[1]),
        lambda p, q: (p, ""),
        lambda p, q: (p, "%%%"),
        lambda p, q: ("/media/" + KEY, q),
    ],
)
def test_a_tampered_link_is_refused(tamper: object) -> None:
    link = signed_link(KEY, SECRET, now=NOW, lifetime=3600)
    assert link is not None
    path, query = tamper(*_split(link))  # type: ignore[operator]
    assert check_link(path, query, SECRET, now=NOW).result is LinkCheck.BAD


def test_another_secret_signs_other_links() -> None:
    ours = signed_link(KEY, SECRET, now=NOW, lifetime=3600)
    another = links.link_secret("another instance's secret")
    theirs = signed_link(KEY, another, now=NOW, lifetime=3600)
    assert ours is not None and theirs is not None and ours != theirs
    assert check_link(*_split(theirs), SECRET, now=NOW).result is LinkCheck.BAD
    # the link secret is not the instance secret, and does not reveal it
    assert SECRET != TEST_SECRET and TEST_SECRET not in SECRET


@pytest.mark.parametrize(
    "key",
    [
        "../secret.mp3",
        "tracks/../../etc/passwd.mp3",
        "/etc/x.mp3",
        "tracks//x.mp3",
        "tracks/.hidden.mp3",
        "tracks/x.mp3/",
        "tracks/x y.mp3",
        "tracks/x%2F.mp3",
        "tracks/1/original.flac",  # not a type the link's location declares
        "remote/ab/abcdef",  # a partner's cached audio, kept without an extension
        "tracks/" + "x" * 600 + ".mp3",
    ],
)
def test_unsafe_or_untyped_keys_get_no_link(key: str) -> None:
    assert signed_link(key, SECRET, now=NOW, lifetime=3600) is None
    # nor does a signature made for such a path by hand pass
    path = links.PREFIX + key
    forged = f"expires={int(NOW) + 600}&md5={links._signature(path, int(NOW) + 600, SECRET)}"
    assert check_link(path, forged, SECRET, now=NOW).result is LinkCheck.BAD


# -- who gets a link --------------------------------------------------------------------


async def _follow(client: Client, url: str, headers: dict[str, str]) -> str:
    """The link a stream URL redirects to (asserting that it does)."""
    answer = await client.get(url, headers=headers)
    assert answer.status_code == 307, await answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "private, no-store"
    location = answer.headers["Location"]
    assert location.startswith("/audio/tracks/")
    return location


async def _free_track_link(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> tuple[int, str, str]:
    """A free track's id, the link its MP3 stream redirects a visitor to, and its key."""
    track = await ready_track(app, client, artist, tmp_path, query="?free=1&publish=1")
    link = await _follow(client, f"/tracks/{track['id']}/stream?format=mp3", {})
    return int(str(track["id"])), link, urlsplit(link).path.removeprefix("/audio/")


async def test_a_free_track_streams_through_its_link(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    track_id, link, key = await _free_track_link(app, client, artist, tmp_path)
    content = (resources_of(app).settings.media_dir / key).read_bytes()
    size = len(content)

    whole = await client.get(link)  # anyone holding the link, signed in or not
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "audio/mpeg"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == "private, max-age=3600"
    assert await whole.get_data() == content
    etag = whole.headers["ETag"]

    part = await client.get(link, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert await part.get_data() == content[100:200]
    # a range longer than a chunk comes whole (read in several)
    big = await client.get(link, headers={"Range": f"bytes=5-{size - 1}"})
    assert await big.get_data() == content[5:]
    suffix = await client.get(link, headers={"Range": "bytes=-10"})
    assert await suffix.get_data() == content[-10:]
    beyond = await client.get(link, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert (await client.get(link, headers={"Range": "bytes=x-y"})).status_code == 416
    stale = await client.get(link, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200 and await stale.get_data() == content
    assert (await client.get(link, headers={"If-None-Match": etag})).status_code == 304
    head = await client.head(link)
    assert head.status_code == 200 and await head.get_data() == b""
    assert head.headers["ETag"] == etag
    assert (await client.post(link)).status_code == 405

    # the Opus rendition, by its own link, with its own type
    opus = await _follow(client, f"/tracks/{track_id}/stream", {})
    assert opus != link
    assert (await client.get(opus)).headers["Content-Type"] == "audio/ogg; codecs=opus"

    tampered = link.replace("stream_mp3.mp3", "stream_opus.opus")
    refused = await client.get(tampered)
    assert refused.status_code == 403
    assert "not valid" in await refused.get_data(as_text=True)


async def test_an_expired_or_missing_file_link(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    _track_id, link, key = await _free_track_link(app, client, artist, tmp_path)
    old = signed_link(key, SECRET, now=time.time() - 7200, lifetime=600)
    assert old is not None
    expired = await client.get(old)
    assert expired.status_code == 410
    assert "expired" in await expired.get_data(as_text=True)
    (resources_of(app).settings.media_dir / key).unlink()
    assert (await client.get(link)).status_code == 404


async def test_the_artist_gets_a_link_to_a_paid_track_and_nobody_else(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    track = await ready_track(app, client, artist, tmp_path)
    url = f"/tracks/{track['id']}/stream"
    link = await _follow(client, url, artist.headers)
    assert (await client.get(link)).status_code == 200
    # a visitor is refused, not redirected
    visitor = await client.get(url)
    assert visitor.status_code == 403 and "Location" not in visitor.headers


async def test_a_play_session_is_served_not_linked_until_the_track_is_owned(
    scene: Scene,
) -> None:
    """A session's stream is bound to its listener: before the charge it is gated and
    after it still served (a link would let anyone hear the paid play); a listener who
    owns the track could download it, so gets a link."""
    _file, content = await scene.file()
    session = await scene.open()
    gated = await scene.client.get(scene.url(session), headers=scene.listener.headers)
    assert gated.status_code == 200 and "Location" not in gated.headers
    assert await gated.get_data() == content  # charged on its way past the free part
    charged = await scene.client.get(
        scene.url(session), headers={**scene.listener.headers, "Range": "bytes=0-9"}
    )
    assert charged.status_code == 206 and "Location" not in charged.headers
    assert await charged.get_data() == content[:10]

    async with resources_of(scene.app).sessionmaker() as db:
        [code] = await issue_vouchers(db, 2000, 1, None)
        await redeem_voucher(db, scene.listener.user_id, code)
    bought = await scene.client.post(
        f"/api/v1/tracks/{scene.track_id}/buy", headers=scene.listener.headers
    )
    assert (await bought.get_json())["owned"] is True
    link = await _follow(scene.client, scene.url(session), scene.listener.headers)
    assert await (await scene.client.get(link)).get_data() == content
    # and without a session, as the owner
    await _follow(scene.client, f"/tracks/{scene.track_id}/stream?format=mp3",
                  scene.listener.headers)  # fmt: skip


async def test_serve_mode_sends_the_file_from_the_stream_route(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, media={"audio_links": "serve"})
    app = create_app(settings)
    async with app.test_app() as test_app:
        account = await make_account(test_app.app, "mira", Role.ARTIST, artist="aurora")
        client = test_app.test_client()
        track = await ready_track(test_app.app, client, account, tmp_path, "?free=1&publish=1")
        answer = await client.get(f"/tracks/{track['id']}/stream")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "audio/ogg; codecs=opus"
        assert len(await answer.get_data()) > 1000


async def test_an_unreadable_file_is_a_logged_500_with_its_request_id(
    app: Quart, client: Client, artist: Account, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _track_id, link, key = await _free_track_link(app, client, artist, tmp_path)
    path = resources_of(app).settings.media_dir / key
    path.unlink()
    path.symlink_to(path.name)  # a loop: open() fails with ELOOP, not "not found"
    answer = await client.get(link, headers={"X-Request-Id": "req-audio-1"})
    assert answer.status_code == 500
    assert "req-audio-1" in await answer.get_data(as_text=True)
    [record] = [r for r in caplog.records if "audio link" in r.getMessage()]
    assert "req-audio-1" in record.getMessage() and record.exc_info is not None
