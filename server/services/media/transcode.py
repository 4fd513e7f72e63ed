"""The worker's media jobs: the streaming renditions and the preview clip of a track
(the transcode job), and a release's sampler (:mod:`server.services.media.sampler`).

Idempotent: renditions are written to temporary files (in the process's scratch folder,
swept if the process dies), moved into place under fixed keys and recorded with an
upsert, so a job that runs twice (a lost lease, a worker killed mid-way and the job taken
over) ends the same way. ffmpeg dies with the worker and is killed if the job is
cancelled.
A file ffmpeg cannot transcode marks the track ``failed`` with ffmpeg's reason.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models.base import utcnow
from models.catalogue import (
    FileRole,
    MediaFile,
    Release,
    Track,
    TrackStatus,
    Visibility,
)
from models.jobs import PermanentJobError
from server.runtime.config import MediaSettings
from server.runtime.worker import JobContext
from server.services.catalogue import index_track
from server.services.events import announce_if_ready, queue_published
from server.services.media.ffmpeg import (
    FfmpegError,
    mp3_args,
    opus_args,
    preview_args,
    run_ffmpeg,
    transcode,
)
from server.services.media.images import blurhash_of
from server.services.media.ingest import hash_file
from server.services.media.sampler import (
    SamplerInputs,
    plan_excerpts,
    sampler_command,
    sampler_inputs,
    tag_mp3,
)
from server.services.media.storage import LocalStorage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendition:
    role: FileRole
    extension: str
    mime_type: str
    format: str
    args: list[str]


def renditions(settings: MediaSettings, duration_seconds: float) -> list[Rendition]:
    return [
        Rendition(FileRole.STREAM_OPUS, "opus", "audio/ogg; codecs=opus", "opus",
                  opus_args(settings.opus_bitrate)),
        Rendition(FileRole.STREAM_MP3, "mp3", "audio/mpeg", "mp3",
                  mp3_args(settings.mp3_bitrate)),
        Rendition(FileRole.PREVIEW_MP3, "mp3", "audio/mpeg", "mp3",
                  preview_args(duration_seconds, settings.preview_length.total_seconds(),
                               settings.preview_fade.total_seconds(),
                               settings.preview_bitrate)),
    ]  # fmt: skip


def storage_of(context: JobContext) -> LocalStorage:
    return LocalStorage(context.resources.settings.media_dir)


async def transcode_track(context: JobContext, payload: dict[str, object]) -> None:
    track_id = payload.get("track_id")
    if not isinstance(track_id, int):
        raise PermanentJobError(f"payload has no track id: {payload!r}")
    settings = context.resources.settings.media
    storage = storage_of(context)
    async with context.sessionmaker() as session:
        original = await session.scalar(
            select(MediaFile).where(
                MediaFile.track_id == track_id, MediaFile.role == FileRole.ORIGINAL
            )
        )
        track = await session.get(Track, track_id)
    if track is None or original is None:
        return  # deleted meanwhile: nothing to do
    source = storage.path(original.storage_key)
    duration = (track.duration_ms or 0) / 1000
    made: list[tuple[Rendition, str, Path]] = []
    try:
        for rendition in renditions(settings, duration):
            temporary = storage.temporary_file(f".{rendition.extension}")
            try:
                await transcode(
                    settings.ffmpeg,
                    source,
                    temporary,
                    rendition.args,
                    settings.ffmpeg_timeout.total_seconds(),
                )
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            key = f"tracks/{track_id}/{rendition.role.value}.{rendition.extension}"
            made.append((rendition, key, temporary))
    except FfmpegError as exc:
        for _rendition, _key, temporary in made:
            temporary.unlink(missing_ok=True)
        await _mark_failed(context, track_id, f"transcoding failed: {exc}")
        raise PermanentJobError(f"transcoding track {track_id} failed: {exc}") from None
    await _record(context, storage, track_id, made)


async def _record(
    context: JobContext,
    storage: LocalStorage,
    track_id: int,
    made: list[tuple[Rendition, str, Path]],
) -> None:
    measured = []
    for rendition, key, temporary in made:
        size, digest = await asyncio.to_thread(hash_file, temporary)
        await asyncio.to_thread(storage.put, temporary, key)
        measured.append((rendition, key, size, digest))
    async with context.sessionmaker() as session:
        track = await session.scalar(
            select(Track)
            .where(Track.id == track_id)
            .options(selectinload(Track.release).selectinload(Release.artist))
        )
        if track is None:
            for _rendition, key, _size, _digest in measured:
                storage.delete(key)
            return
        existing = {
            file.role: file
            for file in await session.scalars(
                select(MediaFile).where(MediaFile.track_id == track_id)
            )
        }
        for rendition, key, size, digest in measured:
            file = existing.get(rendition.role) or MediaFile(track_id=track_id, role=rendition.role)
            duration_ms = track.duration_ms
            if rendition.role is FileRole.PREVIEW_MP3:
                preview = context.resources.settings.media.preview_length.total_seconds()
                duration_ms = min(track.duration_ms, round(preview * 1000))
            file.storage_key = key
            file.mime_type = rendition.mime_type
            file.format = rendition.format
            file.size_bytes = size
            file.sha256 = digest
            file.duration_ms = duration_ms
            file.bitrate = round(size * 8 / (duration_ms / 1000)) if duration_ms else None
            session.add(file)
        became_ready = track.status is not TrackStatus.READY
        track.status = TrackStatus.READY
        track.failure_reason = None
        if track.release.visibility is Visibility.PUBLIC:
            await index_track(session, track, track.release)
        await session.commit()
        release_id = track.release_id
    if became_ready:
        log.info("track %s ready: %s renditions", track_id, len(measured))
    await announce_if_ready(context.sessionmaker, release_id)


async def _mark_failed(context: JobContext, track_id: int, reason: str) -> None:
    async with context.sessionmaker() as session:
        track = await session.get(Track, track_id)
        if track is None:
            return
        track.status = TrackStatus.FAILED
        track.failure_reason = reason[:2000]
        await session.commit()
        release_id = track.release_id
    await announce_if_ready(context.sessionmaker, release_id)


async def make_release_sampler(context: JobContext, payload: dict[str, object]) -> None:
    """Make the release's sampler for what the release is now (whatever the inputs were
    when the job was queued), keep the cover's BlurHash if it has none, then let the
    release's post go out. If ffmpeg cannot make it, the post goes out without it."""
    release_id = payload.get("release")
    if not isinstance(release_id, int):
        raise PermanentJobError(f"payload has no release id: {payload!r}")
    storage = storage_of(context)
    async with context.sessionmaker() as session:
        inputs = await sampler_inputs(session, release_id)
        current = await session.scalar(
            select(MediaFile.storage_key).where(
                MediaFile.release_id == release_id, MediaFile.role == FileRole.SAMPLER
            )
        )
    await _keep_cover_blurhash(context, storage, release_id)
    if inputs is not None and current != inputs.storage_key:
        try:
            await _make_sampler(context, storage, inputs)
        except (FfmpegError, OSError, ValueError) as exc:
            await _publish_without_sampler(context, release_id)
            raise PermanentJobError(f"sampler of release {release_id} failed: {exc}") from None
        except Exception:
            # anything else is retried; on the last attempt the post goes out anyway
            if context.job.attempts >= context.job.max_attempts:
                await _publish_without_sampler(context, release_id)
            raise
    await announce_if_ready(context.sessionmaker, release_id)


async def _publish_without_sampler(context: JobContext, release_id: int) -> None:
    """The post must not wait for ever: it plays the first track's preview instead."""
    async with context.sessionmaker() as session:
        await queue_published(session, release_id)
        await session.commit()


async def _make_sampler(context: JobContext, storage: LocalStorage, inputs: SamplerInputs) -> None:
    settings = context.resources.settings.media
    plan = plan_excerpts([s.seconds for s in inputs.sources], settings.preview_fade.total_seconds())
    clips = [storage.path(source.storage_key) for source in inputs.sources]
    target = storage.temporary_file(".mp3")
    try:
        command = sampler_command(settings.ffmpeg, clips, plan, settings.preview_bitrate, target)
        code, _stdout, stderr = await run_ffmpeg(command, settings.ffmpeg_timeout.total_seconds())
        if code != 0:
            lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
            raise FfmpegError(lines[-1] if lines else f"ffmpeg exited with status {code}")
        cover = None
        if inputs.cover_key is not None:
            cover = await asyncio.to_thread(storage.path(inputs.cover_key).read_bytes)
        seconds = await asyncio.to_thread(
            tag_mp3,
            target,
            title=f"{inputs.title} (sampler)",
            artist=inputs.artist,
            album=inputs.title,
            cover=cover,
            cover_type=inputs.cover_type,
        )
        size, digest = await asyncio.to_thread(hash_file, target)
        await asyncio.to_thread(storage.put, target, inputs.storage_key)
    finally:
        target.unlink(missing_ok=True)
    async with context.sessionmaker() as session:
        file = await session.scalar(
            select(MediaFile).where(
                MediaFile.release_id == inputs.release_id, MediaFile.role == FileRole.SAMPLER
            )
        )
        replaced = file.storage_key if file is not None else None
        if file is None:
            file = MediaFile(release_id=inputs.release_id, role=FileRole.SAMPLER)
        file.storage_key = inputs.storage_key
        file.mime_type = "audio/mpeg"
        file.format = "mp3"
        file.size_bytes = size
        file.sha256 = digest
        file.duration_ms = round(seconds * 1000)
        file.bitrate = round(size * 8 / seconds) if seconds else None
        file.created_at = utcnow()
        session.add(file)
        await session.commit()
    if replaced is not None and replaced != inputs.storage_key:
        storage.delete(replaced)
    log.info(
        "release %s: sampler of %s tracks, %.1f s",
        inputs.release_id,
        len(inputs.sources),
        seconds,
    )


async def _keep_cover_blurhash(context: JobContext, storage: LocalStorage, release_id: int) -> None:
    """Covers stored before BlurHashes were kept get theirs here, once."""
    async with context.sessionmaker() as session:
        cover = await session.scalar(
            select(MediaFile).where(
                MediaFile.release_id == release_id, MediaFile.role == FileRole.COVER
            )
        )
        if cover is None or cover.blurhash is not None:
            return
        try:
            data = await asyncio.to_thread(storage.path(cover.storage_key).read_bytes)
            cover.blurhash = await asyncio.to_thread(blurhash_of, data)
        except (OSError, ValueError) as exc:
            log.warning("release %s: no BlurHash for its cover: %s", release_id, exc)
            return
        await session.commit()
