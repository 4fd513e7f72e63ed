"""A release's sampler, made by the worker with ffmpeg from real audio: at most a minute,
an MP3 with the cover and the release's names in its ID3 tag, served with ranges at
``/releases/{id}/sampler``, made before the release's Create goes out (which carries it
as its one attachment), made anew when the tracks change, and no reason for the Create to
wait for ever when it cannot be made."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from sqlalchemy import select

from federation.objects import iso_duration
from models.catalogue import FileRole, MediaFile
from models.federation import Follow, FollowState, RemoteActor
from models.jobs import Job, JobState
from models.users import Role
from server.runtime.config import Settings
from server.services.media.sampler import (
    SAMPLER_JOB,
    SAMPLER_SECONDS,
    plan_excerpts,
)
from server.web.current import resources_of
from tests.audio import make_audio, make_cover
from tests.catalogue_fixtures import Account, make_account, run_worker, upload
from tests.conftest import make_settings
from tests.test_federation_publish import sent

BASE = "https://music.example"
FOLLOWER_INBOX = "http://127.0.0.1:9/inbox"  # nothing listens: deliveries wait to retry
TITLES = ("Tide", "Undertow", "Kelp", "Lantern", "Swell")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        instance={"base_url": BASE},
        federation={"allow_private_addresses": True},
    )


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def follower(app: Quart, artist_name: str) -> None:
    async with resources_of(app).sessionmaker() as session:
        actor = RemoteActor(
            uri="http://127.0.0.1:9/users/f", domain="127.0.0.1", type="Person",
            inbox=FOLLOWER_INBOX,
        )  # fmt: skip
        session.add(actor)
        await session.flush()
        session.add(
            Follow(
                activity_uri="http://127.0.0.1:9/follows/1",
                follower_actor_id=actor.id,
                followed_name=artist_name,
                state=FollowState.ACCEPTED,
            )
        )
        await session.commit()


async def upload_album(
    client: Any, artist: Account, tmp_path: Path, *, count: int = 5, seconds: float = 20
) -> int:
    """``count`` tracks of one album, the first with the cover embedded; its id."""
    cover = make_cover(tmp_path / "cover.png")
    release_id = None
    for number, title in enumerate(TITLES[:count], 1):
        path = tmp_path / f"{number:02} - {title}.flac"
        tags = {"title": title, "album": "Shoreline", "track": str(number)}
        make_audio(path, "flac", seconds=seconds, frequency=220 * number, tags=tags,
                   cover=cover if number == 1 else None)  # fmt: skip
        query = f"?release={release_id}" if release_id else ""
        response = await upload(client, artist, path, query=query)
        assert response.status_code == 202, await response.get_data(as_text=True)
        release_id = (await response.get_json())["release"]["id"]
    assert release_id is not None
    return int(release_id)


async def sampler_file(app: Quart, release_id: int) -> MediaFile | None:
    async with resources_of(app).sessionmaker() as session:
        return await session.scalar(
            select(MediaFile).where(
                MediaFile.release_id == release_id, MediaFile.role == FileRole.SAMPLER
            )
        )


async def publish(client: Any, artist: Account, release_id: int) -> None:
    response = await client.post(f"/api/v1/releases/{release_id}/publish", headers=artist.headers)
    assert response.status_code == 200, await response.get_data(as_text=True)


async def test_a_five_track_release_gets_a_sampler_before_its_create(
    app: Quart, client: Any, tmp_path: Path
) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await follower(app, "aurora")
    release_id = await upload_album(client, artist, tmp_path)
    await publish(client, artist, release_id)
    assert await sent(app) == []  # nothing goes out before the audio is made

    await run_worker(app)
    stored = await sampler_file(app, release_id)
    assert stored is not None and stored.mime_type == "audio/mpeg"
    path = resources_of(app).settings.media_dir / stored.storage_key

    probe = ffprobe(path)
    assert probe["format"]["format_name"] == "mp3"
    assert 40 < float(probe["format"]["duration"]) <= SAMPLER_SECONDS + 0.5
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    pictures = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert [s["codec_name"] for s in audio] == ["mp3"]
    assert len(pictures) == 1 and pictures[0]["disposition"]["attached_pic"] == 1
    tags = {key.lower(): value for key, value in probe["format"]["tags"].items()}
    assert tags["album"] == "Shoreline" and tags["artist"] == "Aurora"
    assert tags["title"] == "Shoreline (sampler)"
    assert stored.duration_ms is not None
    assert abs(stored.duration_ms / 1000 - float(probe["format"]["duration"])) < 0.5

    whole = await client.get(f"/releases/{release_id}/sampler")
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "audio/mpeg"
    body = await whole.get_data()
    assert body == path.read_bytes()
    ranged = await client.get(f"/releases/{release_id}/sampler", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    assert await ranged.get_data() == body[:100]
    head = await client.head(f"/releases/{release_id}/sampler")
    assert head.status_code == 200 and head.headers["ETag"] == whole.headers["ETag"]
    assert await head.get_data() == b""

    [(kind, create, inboxes)] = await sent(app)
    assert kind == "Create" and inboxes == [FOLLOWER_INBOX]
    [attachment] = create["object"]["attachment"]
    assert attachment["url"] == f"{BASE}/releases/{release_id}/sampler"
    assert attachment["mediaType"] == "audio/mpeg"
    assert attachment["name"] == "Preview of «Shoreline» by Aurora: excerpts of 5 tracks"
    assert attachment["icon"]["url"] == f"{BASE}/releases/{release_id}/cover"
    assert attachment["icon"]["mediaType"] == "image/jpeg"
    assert isinstance(attachment["blurhash"], str) and len(attachment["blurhash"]) > 6
    assert attachment["duration"] == iso_duration(stored.duration_ms)
    # the album object's tracks keep their own previews
    album = await client.get(
        f"/releases/{release_id}/album", headers={"Accept": "application/activity+json"}
    )
    items = (await album.get_json())["orderedItems"]
    assert [item["name"] for item in items] == list(TITLES)
    assert all(item["preview"].endswith("/preview") for item in items)


async def test_a_draft_sampler_is_its_artists_alone(
    app: Quart, client: Any, tmp_path: Path
) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    release_id = await upload_album(client, artist, tmp_path, count=2, seconds=6)
    await publish(client, artist, release_id)
    await run_worker(app)
    public = await client.get(f"/releases/{release_id}/sampler")
    assert public.status_code == 200 and public.headers["Cache-Control"].startswith("public")
    withdrawn = await client.delete(
        f"/api/v1/releases/{release_id}/publication", headers=artist.headers
    )
    assert withdrawn.status_code == 204
    assert (await client.get(f"/releases/{release_id}/sampler")).status_code == 404
    mine = await client.get(f"/releases/{release_id}/sampler", headers=artist.headers)
    assert mine.status_code == 200
    # the artist's own view of a draft is never kept by a shared cache, nor its cover
    assert mine.headers["Cache-Control"] == "private, no-store"
    cover = await client.get(f"/releases/{release_id}/cover", headers=artist.headers)
    assert cover.status_code == 200 and cover.headers["Cache-Control"] == "private, no-store"
    assert (await client.get("/releases/999/sampler")).status_code == 404


async def test_a_single_has_no_sampler(app: Quart, client: Any, tmp_path: Path) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await follower(app, "aurora")
    release_id = await upload_album(client, artist, tmp_path, count=1, seconds=4)
    await publish(client, artist, release_id)
    await run_worker(app)
    assert await sampler_file(app, release_id) is None
    assert (await client.get(f"/releases/{release_id}/sampler")).status_code == 404
    [(kind, create, _inboxes)] = await sent(app)
    assert kind == "Create"
    [attachment] = create["object"]["attachment"]
    assert attachment["url"].endswith("/preview") and attachment["mediaType"] == "audio/mpeg"
    assert "icon" in attachment and "blurhash" in attachment


async def test_a_new_track_makes_a_new_sampler(app: Quart, client: Any, tmp_path: Path) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    release_id = await upload_album(client, artist, tmp_path, count=2, seconds=6)
    await publish(client, artist, release_id)
    await run_worker(app)
    first = await sampler_file(app, release_id)
    assert first is not None
    old_path = resources_of(app).settings.media_dir / first.storage_key

    path = tmp_path / "03 - Kelp.flac"
    make_audio(path, "flac", seconds=6, frequency=990,
               tags={"title": "Kelp", "album": "Shoreline", "track": "3"})  # fmt: skip
    response = await upload(client, artist, path, query=f"?release={release_id}")
    assert response.status_code == 202
    await run_worker(app)
    second = await sampler_file(app, release_id)
    assert second is not None and second.storage_key != first.storage_key
    assert not old_path.exists(), "the old sampler's file is removed"
    assert second.duration_ms is not None and first.duration_ms is not None
    assert second.duration_ms > first.duration_ms  # a third excerpt
    note = await client.get(
        f"/releases/{release_id}/note", headers={"Accept": "application/activity+json"}
    )
    [attachment] = (await note.get_json())["attachment"]
    assert attachment["name"].endswith("excerpts of 3 tracks")


async def test_a_sampler_that_cannot_be_made_does_not_hold_the_create(
    app: Quart, client: Any, tmp_path: Path
) -> None:
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await follower(app, "aurora")
    release_id = await upload_album(client, artist, tmp_path, count=2, seconds=6)
    await run_worker(app)  # transcoded while a draft: no sampler yet
    async with resources_of(app).sessionmaker() as session:
        previews = (
            await session.scalars(
                select(MediaFile)
                .where(MediaFile.role == FileRole.PREVIEW_MP3)
                .order_by(MediaFile.track_id)
            )
        ).all()
    media = resources_of(app).settings.media_dir
    # the second preview is damaged on disk: ffmpeg cannot read it
    (media / previews[1].storage_key).write_bytes(b"not audio at all")
    await publish(client, artist, release_id)
    await run_worker(app)

    assert await sampler_file(app, release_id) is None
    async with resources_of(app).sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.kind == SAMPLER_JOB))
    assert job is not None and job.state is JobState.FAILED
    [(kind, create, inboxes)] = await sent(app)
    assert kind == "Create" and inboxes == [FOLLOWER_INBOX]
    [attachment] = create["object"]["attachment"]
    assert attachment["url"] == f"{BASE}/tracks/{previews[0].track_id}/preview"
    assert attachment["name"] == "Preview of «Tide» from «Shoreline» by Aurora"


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_the_plan_stays_within_a_minute(count: int) -> None:
    plan = plan_excerpts([45.0] * count, 2.0)
    assert len(plan.excerpts) == count
    assert plan.seconds <= SAMPLER_SECONDS
    for excerpt in plan.excerpts:
        assert excerpt.start >= 0 and excerpt.start + excerpt.length <= 43.0


def test_short_previews_are_taken_whole() -> None:
    plan = plan_excerpts([4.0, 30.0], 2.0)
    assert plan.excerpts[0].start == 0 and plan.excerpts[0].length == 4.0
    assert plan.crossfade <= 2.0
    assert plan.seconds == pytest.approx(4.0 + plan.excerpts[1].length - plan.crossfade)


async def test_an_unexpected_sampler_failure_still_lets_the_post_out(
    app: Quart, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not ffmpeg's failure but anything else (a tag library's error on an odd file, a
    database error): retried like any job, and on its last attempt the Create goes out
    with the first preview instead of never."""
    from server.services.media import transcode

    async def broken(*_args: Any) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(transcode, "_make_sampler", broken)
    artist = await make_account(app, "mira", Role.ARTIST, artist="aurora")
    await follower(app, "aurora")
    release_id = await upload_album(client, artist, tmp_path, count=2, seconds=6)
    await run_worker(app)
    await publish(client, artist, release_id)
    async with resources_of(app).sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.kind == SAMPLER_JOB))
        assert job is not None
        job.max_attempts = 1  # its last attempt is the next
        await session.commit()
    await run_worker(app)

    async with resources_of(app).sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.kind == SAMPLER_JOB))
    assert job is not None and job.state is JobState.FAILED
    [(kind, create, _inboxes)] = await sent(app)
    assert kind == "Create"
    [attachment] = create["object"]["attachment"]
    assert attachment["url"].endswith("/preview")
