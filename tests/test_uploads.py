"""Uploading real files through the API, on both databases: every accepted format, what
the worker makes of them, and every kind of bad input leaving nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import select

from models.catalogue import FileRole, MediaFile, Release, Track, TrackStatus
from models.jobs import Job
from models.search import SearchDocument
from models.users import Role
from server.web.current import resources_of
from tests.audio import make_audio, make_cover
from tests.catalogue_fixtures import (
    Account,
    artist,
    count_rows,
    make_account,
    run_worker,
    stored_files,
    upload,
)
from tests.conftest import make_settings

__all__ = ["artist"]

TAGS = {"title": "Night Swim", "artist": "Aurora", "album": "Tides", "track": "2/5",
        "date": "2024-05-01", "genre": "Ambient"}  # fmt: skip


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"])
async def test_every_format_uploads_and_is_transcoded(
    app: Quart, client: Client, artist: Account, tmp_path: Path, fmt: str
) -> None:
    path = make_audio(tmp_path / f"song.{fmt}", fmt, tags=None if fmt in ("wav", "aiff") else TAGS)
    response = await upload(client, artist, path, query="?publish=true")
    assert response.status_code == 202, await response.get_data(as_text=True)
    body = await response.get_json()
    assert body["track"]["status"] == "processing"
    assert body["track"]["preview_url"] is None
    if fmt in ("wav", "aiff"):
        assert body["track"]["title"] == "song"
        assert body["release"]["title"] == "song"
        assert body["release"]["kind"] == "single"
    else:
        assert body["track"]["title"] == "Night Swim"
        assert body["track"]["position"] == 2
        assert body["release"]["title"] == "Tides"
        assert body["release"]["release_date"] == "2024-05-01"
        assert body["release"]["tags"] == ["ambient"]
    assert 1900 <= body["track"]["duration_ms"] <= 2100

    assert await run_worker(app) == 2  # the transcode, then the release announced
    track = await (await client.get(f"/api/v1/tracks/{body['track']['id']}")).get_json()
    assert track["status"] == "ready"
    assert track["preview_url"].endswith(f"/tracks/{track['id']}/preview")
    async with resources_of(app).sessionmaker() as session:
        files = {f.role: f for f in await session.scalars(select(MediaFile))}
    assert set(files) == {FileRole.ORIGINAL, FileRole.STREAM_OPUS, FileRole.STREAM_MP3,
                          FileRole.PREVIEW_MP3}  # fmt: skip
    assert files[FileRole.ORIGINAL].format == {"ogg": "ogg_vorbis"}.get(fmt, fmt)
    assert files[FileRole.STREAM_OPUS].mime_type == "audio/ogg; codecs=opus"
    storage = resources_of(app).settings.media_dir
    for file in files.values():
        on_disk = storage / file.storage_key
        assert on_disk.stat().st_size == file.size_bytes > 0
    head = (storage / files[FileRole.STREAM_OPUS].storage_key).read_bytes()[:64]
    assert head.startswith(b"OggS") and b"OpusHead" in head


async def test_preview_is_45_seconds_with_a_fade(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    path = make_audio(tmp_path / "long.flac", "flac", seconds=60)
    response = await upload(client, artist, path)
    assert response.status_code == 202
    await run_worker(app)
    async with resources_of(app).sessionmaker() as session:
        preview = await session.scalar(
            select(MediaFile).where(MediaFile.role == FileRole.PREVIEW_MP3)
        )
    assert preview is not None
    assert preview.duration_ms == 45000
    clip = resources_of(app).settings.media_dir / preview.storage_key
    import mutagen

    assert 44.5 <= mutagen.File(clip).info.length <= 45.5
    # the last half second is faded out: far quieter than the middle
    import subprocess

    def loudness(start: float) -> float:
        out = subprocess.run(
            ["ffmpeg", "-v", "info", "-ss", str(start), "-t", "0.4", "-i", str(clip),
             "-af", "volumedetect", "-f", "null", "-"],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
        return float(out.split("mean_volume:")[1].split("dB")[0])

    assert loudness(44.5) < loudness(20.0) - 10


async def test_embedded_cover_becomes_the_release_cover(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    cover = make_cover(tmp_path / "cover.png")
    path = make_audio(tmp_path / "c.mp3", "mp3", tags=TAGS, cover=cover)
    body = await (await upload(client, artist, path, query="?publish=1")).get_json()
    assert body["release"]["cover_url"].endswith(f"/releases/{body['release']['id']}/cover")
    response = await client.get(f"/releases/{body['release']['id']}/cover")
    assert response.status_code == 200
    # drawn anew from its pixels (tests/test_cover_art.py): an opaque PNG becomes a JPEG
    assert response.content_type == "image/jpeg"
    assert (await response.get_data()).startswith(b"\xff\xd8\xff")


async def test_name_that_lies_about_the_format(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    real_flac = make_audio(tmp_path / "x.flac", "flac")
    response = await upload(client, artist, real_flac, name="track.mp3", content_type="audio/mpeg")
    assert response.status_code == 202
    async with resources_of(app).sessionmaker() as session:
        original = await session.scalar(select(MediaFile))
    assert original is not None
    assert (original.format, original.mime_type) == ("flac", "audio/flac")
    assert original.storage_key.endswith("original.flac")


async def test_tracks_of_one_album_share_a_release(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    ids = set()
    for number in (1, 2, 3):
        tags = {**TAGS, "title": f"Part {number}", "track": str(number)}
        path = make_audio(tmp_path / f"{number}.mp3", "mp3", frequency=300 + number * 50, tags=tags)
        ids.add((await (await upload(client, artist, path)).get_json())["release"]["id"])
    assert len(ids) == 1
    await run_worker(app)
    [release_id] = ids
    release = await (
        await client.get(f"/api/v1/releases/{release_id}", headers=artist.headers)
    ).get_json()
    assert [t["title"] for t in release["tracks"]] == ["Part 1", "Part 2", "Part 3"]
    assert release["visibility"] == "draft"
    # a draft is invisible to everybody else
    assert (await client.get(f"/api/v1/releases/{release_id}")).status_code == 404
    published = await client.post(f"/api/v1/releases/{release_id}/publish", headers=artist.headers)
    assert published.status_code == 200
    assert (await client.get(f"/api/v1/releases/{release_id}")).status_code == 200


async def assert_nothing_left(app: Quart) -> None:
    for model in (Track, Release, MediaFile, Job, SearchDocument):
        if model is SearchDocument:
            # the artist profile itself is searchable; nothing else may be
            async with resources_of(app).sessionmaker() as session:
                kinds = set(await session.scalars(select(SearchDocument.kind)))
            assert kinds <= {"artist"}
            continue
        assert await count_rows(app, model) == 0, model.__name__
    assert stored_files(app) == []


def _garbage_after_header(source: Path, target: Path, keep: int) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[:keep] + os.urandom(len(data) - keep))
    return target


@pytest.mark.parametrize(
    ("make", "status", "reason"),
    [
        (lambda d: (d / "notes.mp3").write_text("just some text") and d / "notes.mp3",
         415, "is not audio playfair accepts"),
        (lambda d: (d / "photo.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000))
         and d / "photo.flac", 415, "is not audio playfair accepts"),
        (lambda d: (d / "empty.mp3").write_bytes(b"") == 0 and d / "empty.mp3",
         400, "the file is empty"),
        (lambda d: _garbage_after_header(make_audio(d / "src.flac", "flac", seconds=3),
                                         d / "corrupt.flac", 200),
         422, "no decodable audio|truncated or corrupt|cannot be"),
        (lambda d: (d / "cut.mp3").write_bytes(
            make_audio(d / "full.mp3", "mp3", seconds=6).read_bytes()[:30000]) and d / "cut.mp3",
         422, "truncated or corrupt: its header promises 6.0 s"),
        (lambda d: (d / "cut.wav").write_bytes(
            make_audio(d / "full.wav", "wav", seconds=4).read_bytes()[:100000]) and d / "cut.wav",
         422, "truncated or corrupt"),
        (lambda d: make_audio(d / "long.mp3", "mp3", tags={"title": "x" * 2000}),
         422, "title tag is 2000 characters long"),
        (lambda d: make_audio(d / "ctl.flac", "flac", tags={"album": "bad\x1bescape"}),
         422, "album tag contains control characters"),
    ],
    ids=["text", "image", "empty", "corrupt", "truncated-mp3", "truncated-wav",
         "absurd-tag", "control-characters"],
)  # fmt: skip
async def test_bad_files_are_refused_and_leave_nothing(
    app: Quart, client: Client, artist: Account, tmp_path: Path,
    make, status: int, reason: str,  # type: ignore[no-untyped-def]
) -> None:  # fmt: skip
    import re

    response = await upload(client, artist, make(tmp_path))
    payload = await response.get_json()
    assert response.status_code == status, payload
    assert re.search(reason, payload["reason"]), payload["reason"]
    await assert_nothing_left(app)


async def test_an_upload_over_the_limit_is_413(tmp_path: Path, database_url: str) -> None:
    from server.web.app import create_app

    settings = make_settings(tmp_path, database_url, media={"max_upload_bytes": 1024 * 1024})
    app = create_app(settings)
    async with app.test_app() as test_app:
        account = await make_account(test_app.app, "mira", Role.ARTIST, artist="aurora")
        client = test_app.test_client()
        big = make_audio(tmp_path / "big.wav", "wav", seconds=15)  # mono 16 bit: ~1.3 MB
        response = await upload(client, account, big)
        assert response.status_code == 413
        reason = (await response.get_json())["reason"]
        assert reason == "the upload is larger than the limit of 1048576 bytes"
        small = make_audio(tmp_path / "small.wav", "wav", seconds=2)
        assert (await upload(client, account, small)).status_code == 202
        assert await count_rows(test_app.app, Track) == 1
        leftovers = [p for p in stored_files(test_app.app) if "incoming" in p.parts]
        assert leftovers == []


async def test_request_shape_errors(client: Client, artist: Account, tmp_path: Path) -> None:
    not_multipart = await client.post("/api/v1/uploads", headers=artist.headers, data=b"raw bytes")
    assert not_multipart.status_code == 415
    assert "multipart/form-data" in (await not_multipart.get_json())["reason"]
    body = b'--XyZ\r\nContent-Disposition: form-data; name="album"\r\n\r\nTides\r\n--XyZ--\r\n'
    no_file = await client.post(
        "/api/v1/uploads",
        headers={**artist.headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
        data=body,
    )
    assert no_file.status_code == 400
    assert "no part named 'file'" in (await no_file.get_json())["reason"]
    path = make_audio(tmp_path / "a.mp3", "mp3")
    bad_release = await upload(client, artist, path, query="?release=abc")
    assert bad_release.status_code == 400
    missing_release = await upload(client, artist, path, query="?release=999")
    assert missing_release.status_code == 404


async def test_who_may_upload(app: Quart, client: Client, tmp_path: Path) -> None:
    path = make_audio(tmp_path / "a.mp3", "mp3")
    anonymous = await upload(client, None, path)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="playfair"')

    bad_token = await client.post("/api/v1/uploads", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert 'error="invalid_token"' in bad_token.headers["WWW-Authenticate"]

    reader = await make_account(app, "reader", Role.ARTIST, scopes="read", artist="quiet")
    no_scope = await upload(client, reader, path)
    assert no_scope.status_code == 403
    assert 'error="insufficient_scope", scope="upload"' in no_scope.headers["WWW-Authenticate"]

    listener = await make_account(app, "lina", Role.LISTENER)
    assert (await upload(client, listener, path)).status_code == 403

    owner = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    other = await upload(client, owner, path, query="?artist=quiet")
    assert other.status_code == 404, "nobody uploads as an artist they do not manage"
    assert await count_rows(app, Track) == 0


async def test_revoked_and_expired_tokens_are_refused(
    app: Quart, client: Client, artist: Account
) -> None:
    from datetime import timedelta

    from models.base import utcnow
    from models.tokens import AccessToken

    assert (await client.get("/api/v1/releases", headers=artist.headers)).status_code == 200
    async with resources_of(app).sessionmaker() as session:
        token = await session.scalar(select(AccessToken))
        assert token is not None
        token.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    expired = await client.get("/api/v1/releases", headers=artist.headers)
    assert expired.status_code == 401
    assert "expired" in (await expired.get_json())["reason"]
    async with resources_of(app).sessionmaker() as session:
        token = await session.scalar(select(AccessToken))
        assert token is not None
        token.expires_at = None
        token.revoked_at = utcnow()
        await session.commit()
    revoked = await client.get("/api/v1/releases", headers=artist.headers)
    assert revoked.status_code == 401
    assert "revoked" in (await revoked.get_json())["reason"]


async def test_a_file_ffmpeg_cannot_transcode_marks_the_track_failed(
    app: Quart, client: Client, artist: Account, tmp_path: Path
) -> None:
    path = make_audio(tmp_path / "a.flac", "flac")
    body = await (await upload(client, artist, path)).get_json()
    async with resources_of(app).sessionmaker() as session:
        original = await session.scalar(
            select(MediaFile).where(MediaFile.role == FileRole.ORIGINAL)
        )
    assert original is not None
    # the stored original is damaged after it was accepted
    (resources_of(app).settings.media_dir / original.storage_key).write_bytes(b"fLaC" + bytes(64))
    await run_worker(app)
    async with resources_of(app).sessionmaker() as session:
        track = await session.get(Track, body["track"]["id"])
        job = await session.scalar(select(Job))
    assert track is not None and job is not None
    assert track.status is TrackStatus.FAILED
    assert track.failure_reason and track.failure_reason.startswith("transcoding failed:")
    assert job.state == "failed"
    shown = await (
        await client.get(f"/api/v1/tracks/{track.id}", headers=artist.headers)
    ).get_json()
    assert shown["status"] == "failed"
    assert shown["failure_reason"] == track.failure_reason
    assert [p for p in stored_files(app) if "incoming" in p.parts] == []
