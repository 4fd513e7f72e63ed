"""Streaming and previews over HTTP: ranges, conditional requests, HEAD, access rules."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.catalogue import FileRole, MediaFile
from models.users import Role
from server.web.app import create_app
from server.web.current import resources_of
from tests.audio import make_audio
from tests.catalogue_fixtures import Account, artist, make_account, run_worker, upload
from tests.conftest import make_settings

__all__ = ["artist"]


async def ready_track(
    app: Quart, client: Client, account: Account, tmp_path: Path, query: str = "?publish=1"
) -> dict[str, object]:
    path = make_audio(tmp_path / "t.flac", "flac", seconds=3, tags={"title": "Tone"})
    body = await (await upload(client, account, path, query=query)).get_json()
    await run_worker(app)
    track: dict[str, object] = body["track"]
    return track


async def file_of(app: Quart, role: FileRole) -> tuple[MediaFile, bytes]:
    async with resources_of(app).sessionmaker() as session:
        file = await session.scalar(select(MediaFile).where(MediaFile.role == role))
    assert file is not None
    return file, (resources_of(app).settings.media_dir / file.storage_key).read_bytes()


async def test_preview_ranges_and_conditionals(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    track = await ready_track(app, client, artist, tmp_path)
    url = f"/tracks/{track['id']}/preview"
    _file, content = await file_of(app, FileRole.PREVIEW_MP3)
    size = len(content)

    full = await client.get(url)
    assert full.status_code == 200
    assert full.headers["Content-Type"] == "audio/mpeg"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Content-Length"] == str(size)
    assert full.headers["Cache-Control"].startswith("public")
    assert await full.get_data() == content
    etag, modified = full.headers["ETag"], full.headers["Last-Modified"]

    # RFC 9530: the whole file's digest, on full answers and on ranges alike
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(content).digest()).decode() + ":"
    assert full.headers["Repr-Digest"] == digest

    part = await client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Repr-Digest"] == digest
    assert part.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert part.headers["Content-Length"] == "100"
    assert await part.get_data() == content[100:200]

    suffix = await client.get(url, headers={"Range": "bytes=-50"})
    assert suffix.status_code == 206
    assert await suffix.get_data() == content[-50:]

    open_ended = await client.get(url, headers={"Range": f"bytes={size - 10}-"})
    assert await open_ended.get_data() == content[-10:]

    beyond = await client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert f"the file has {size} bytes" in await beyond.get_data(as_text=True)

    malformed = await client.get(url, headers={"Range": "bytes=ten-twenty"})
    assert malformed.status_code == 416
    assert "malformed Range header" in await malformed.get_data(as_text=True)

    matching = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert matching.status_code == 206
    stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert stale.status_code == 200
    assert await stale.get_data() == content

    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304
    assert (await client.get(url, headers={"If-Modified-Since": modified})).status_code == 304

    head = await client.head(url)
    assert head.status_code == 200
    assert head.headers["ETag"] == etag
    assert await head.get_data() == b""
    # (Quart's test client recomputes Content-Length from the body it got; the HEAD
    # Content-Length over real HTTP is checked in test_cli's run test.)


async def test_full_streams_follow_the_access_rules(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    paid = await ready_track(app, client, artist, tmp_path)
    url = f"/tracks/{paid['id']}/stream"
    visitor = await client.get(url)
    assert visitor.status_code == 403
    assert "stream-to-own" in await visitor.get_data(as_text=True)
    listener = await make_account(app, "lina", Role.LISTENER)
    assert (await client.get(url, headers=listener.headers)).status_code == 403

    # the artist's own track: a signed audio link (tests/test_audio_links.py)
    own = await client.get(url, headers=artist.headers, follow_redirects=True)
    assert own.status_code == 200
    assert own.headers["Content-Type"] == "audio/ogg; codecs=opus"
    assert own.headers["Cache-Control"].startswith("private")
    mp3 = await client.get(url + "?format=mp3", headers=artist.headers, follow_redirects=True)
    assert mp3.headers["Content-Type"] == "audio/mpeg"
    by_accept = await client.get(
        url, headers={**artist.headers, "Accept": "audio/mpeg"}, follow_redirects=True
    )
    assert by_accept.headers["Content-Type"] == "audio/mpeg"
    unknown = await client.get(url + "?format=wma", headers=artist.headers)
    assert unknown.status_code == 404

    free_path = make_audio(tmp_path / "free.mp3", "mp3", tags={"title": "Gift"})
    free = await (await upload(client, artist, free_path, query="?free=1&publish=1")).get_json()
    await run_worker(app)
    assert free["track"]["price_model"] == "free"
    free_url = f"/tracks/{free['track']['id']}/stream"
    assert (await client.get(free_url, follow_redirects=True)).status_code == 200


async def test_drafts_and_unfinished_tracks(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    path = make_audio(tmp_path / "d.mp3", "mp3")
    body = await (await upload(client, artist, path)).get_json()
    track_id = body["track"]["id"]
    # processing: the owner is told it is not ready; visitors do not see a draft at all
    assert (
        await client.get(f"/tracks/{track_id}/preview", headers=artist.headers)
    ).status_code == 409
    assert (await client.get(f"/tracks/{track_id}/preview")).status_code == 404
    await run_worker(app)
    assert (await client.get(f"/tracks/{track_id}/preview")).status_code == 404
    assert (
        await client.get(f"/tracks/{track_id}/preview", headers=artist.headers)
    ).status_code == 200
    assert (await client.get("/tracks/999999/preview")).status_code == 404


async def test_x_accel_redirect_mode(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, media={"x_accel_redirect": "/_media/"})
    app = create_app(settings)
    async with app.test_app() as test_app:
        account = await make_account(test_app.app, "mira", Role.ARTIST, artist="aurora")
        client = test_app.test_client()
        track = await ready_track(test_app.app, client, account, tmp_path)
        file, _content = await file_of(test_app.app, FileRole.PREVIEW_MP3)
        response = await client.get(
            f"/tracks/{track['id']}/preview", headers={"Range": "bytes=0-1"}
        )
    assert response.status_code == 200
    assert response.headers["X-Accel-Redirect"] == f"/_media/{file.storage_key}"
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert await response.get_data() == b""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_missing_cover_is_404(client: Client, method: str) -> None:
    response = await client.open("/releases/5/cover", method=method)
    assert response.status_code == 404
