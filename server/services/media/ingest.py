"""From an uploaded or imported file to a track in `processing`.

``inspect_audio`` decides whether the file is acceptable (real format from its content,
tags that make sense, audio that decodes as long as its header says); ``add_track`` puts
it into the catalogue and queues its transcode. ``ingest`` does both and guarantees that
a refused or failed file leaves nothing behind: no stored file, no row.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import jobs
from models.catalogue import (
    Artist,
    FileRole,
    MediaFile,
    PriceModel,
    Release,
    ReleaseKind,
    Track,
    TrackStatus,
)
from server.services.catalogue import find_or_create_release, slugify
from server.services.media.ffmpeg import CorruptAudio, FfmpegError, decode_check, judge_decode
from server.services.media.formats import (
    ACCEPTED,
    EXTENSIONS,
    MIME_TYPES,
    SNIFF_BYTES,
    AudioFormat,
    id3_size,
    sniff,
)
from server.services.media.images import BadImage, CleanImage, blurhash_of, clean_image
from server.services.media.storage import LocalStorage
from server.services.media.tags import (
    MAX_PICTURE_BYTES,
    RawTags,
    TagError,
    TrackTags,
    UnreadableAudio,
    clean_tags,
    read_tags,
)

TRANSCODE_JOB = "media.transcode"


class IngestError(ValueError):
    """A file is refused; ``status`` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IncomingFile:
    path: Path
    file_name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Inspected:
    format: AudioFormat
    raw: RawTags
    tags: TrackTags
    duration_seconds: float
    cover: CleanImage | None = None


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _read_head(path: Path) -> bytes:
    """The first bytes of the file, and of what follows a large ID3 tag (cover art), with
    the tag's body blanked so that ``sniff`` sees the tag header and then the audio."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        skip = id3_size(head)
        if skip and skip > len(head) - 16:
            handle.seek(skip)
            head = head[:10] + bytes(skip - 10) + handle.read(SNIFF_BYTES)
    return head


async def inspect_audio(incoming: IncomingFile, ffmpeg: str, time_limit: float) -> Inspected:
    if incoming.size == 0:
        raise IngestError("the file is empty", 400)
    head = await asyncio.to_thread(_read_head, incoming.path)
    audio_format = sniff(head)
    if audio_format is None:
        raise IngestError(f"{incoming.file_name!r} is not audio playfair accepts ({ACCEPTED})", 415)
    try:
        raw = await asyncio.to_thread(read_tags, incoming.path)
        tags = clean_tags(raw, incoming.file_name)
    except (UnreadableAudio, TagError) as exc:
        raise IngestError(f"{incoming.file_name!r}: {exc}") from None
    try:
        report = await decode_check(ffmpeg, incoming.path, time_limit)
        duration = judge_decode(report, raw.duration_seconds)
    except CorruptAudio as exc:
        raise IngestError(f"{incoming.file_name!r}: {exc}") from None
    except FfmpegError as exc:
        raise IngestError(f"{incoming.file_name!r} could not be checked: {exc}", 503) from None
    cover = await asyncio.to_thread(_cover, raw)
    return Inspected(audio_format, raw, tags, duration, cover)


def _release_kind(tags: TrackTags) -> ReleaseKind:
    if tags.compilation or (tags.album_artist or "").lower() in ("various artists", "various"):
        return ReleaseKind.COMPILATION
    return ReleaseKind.ALBUM if tags.album else ReleaseKind.SINGLE


def _cover(raw: RawTags) -> CleanImage | None:
    """The first embedded picture that decodes, drawn anew (server.services.media.images); the
    claimed MIME type and the first bytes are not trusted."""
    for _mime, data in raw.pictures:
        if len(data) > MAX_PICTURE_BYTES:
            continue
        try:
            return clean_image(data)
        except BadImage:
            continue
    return None


async def add_track(
    session: AsyncSession,
    storage: LocalStorage,
    artist: Artist,
    incoming: IncomingFile,
    inspected: Inspected,
    *,
    release: Release | None = None,
    album_fallback: str | None = None,
    price_model: PriceModel = PriceModel.STREAM_TO_OWN,
    stored: list[str],
) -> Track:
    """Add the track (flushing, not committing); every storage key written is appended
    to ``stored`` so that the caller can remove them if the transaction fails."""
    tags = inspected.tags
    if release is None:
        title = tags.album or album_fallback or tags.title
        release, _created = await find_or_create_release(
            session,
            artist,
            title,
            kind=_release_kind(tags) if tags.album or not album_fallback else ReleaseKind.ALBUM,
            release_date=tags.release_date,
            genre=tags.genre,
        )
    own_names = {artist.display_name.casefold(), artist.name.casefold()}
    credit = tags.artist if tags.artist and tags.artist.casefold() not in own_names else ""
    track = Track(
        release_id=release.id,
        artist_id=artist.id,
        artist_credit=credit,
        title=tags.title,
        slug=slugify(tags.title),
        position=tags.position,
        disc=tags.disc,
        duration_ms=round(inspected.duration_seconds * 1000),
        isrc=tags.isrc,
        genre=tags.genre,
        price_model=price_model,
        status=TrackStatus.PROCESSING,
    )
    session.add(track)
    await session.flush()
    key = f"tracks/{track.id}/original.{EXTENSIONS[inspected.format]}"
    await asyncio.to_thread(storage.put, incoming.path, key)
    stored.append(key)
    session.add(
        MediaFile(
            track_id=track.id,
            role=FileRole.ORIGINAL,
            storage_key=key,
            mime_type=MIME_TYPES[inspected.format],
            format=inspected.format.value,
            size_bytes=incoming.size,
            sha256=incoming.sha256,
            bitrate=inspected.raw.bitrate,
            duration_ms=track.duration_ms,
        )
    )
    cover = inspected.cover
    if cover is not None:
        has_cover = await session.scalar(
            select(MediaFile.id).where(
                MediaFile.release_id == release.id, MediaFile.role == FileRole.COVER
            )
        )
        if has_cover is None:
            await _store_cover(session, storage, release, cover, stored=stored)
    await jobs.enqueue(
        session, TRANSCODE_JOB, {"track_id": track.id}, unique_key=f"transcode:{track.id}"
    )
    return track


async def _store_cover(
    session: AsyncSession,
    storage: LocalStorage,
    release: Release,
    cover: CleanImage,
    *,
    stored: list[str],
) -> None:
    """Keep an embedded picture as the release's cover, unless another upload of the same
    release got there first (then ours is dropped, not an error)."""
    data, mime, extension = cover.data, cover.mime_type, cover.extension
    digest = hashlib.sha256(data).hexdigest()
    key = f"releases/{release.id}/cover-{digest[:16]}.{extension}"
    temporary = storage.temporary_file()
    await asyncio.to_thread(temporary.write_bytes, data)
    await asyncio.to_thread(storage.put, temporary, key)
    placeholder = await asyncio.to_thread(blurhash_of, data)
    try:
        async with session.begin_nested():
            session.add(
                MediaFile(
                    release_id=release.id,
                    role=FileRole.COVER,
                    storage_key=key,
                    mime_type=mime,
                    format=extension,
                    size_bytes=len(data),
                    sha256=digest,
                    blurhash=placeholder,
                )
            )
    except IntegrityError:
        storage.delete(key)
        return
    stored.append(key)


async def ingest(
    sessionmaker: async_sessionmaker[AsyncSession],
    storage: LocalStorage,
    artist_id: int,
    incoming: IncomingFile,
    *,
    ffmpeg: str,
    time_limit: float,
    release_id: int | None = None,
    album_fallback: str | None = None,
    price_model: PriceModel = PriceModel.STREAM_TO_OWN,
) -> Track:
    """Inspect and add one file, all or nothing; the incoming file is consumed either way."""
    stored: list[str] = []
    try:
        inspected = await inspect_audio(incoming, ffmpeg, time_limit)
        async with sessionmaker() as session:
            artist = await session.get(Artist, artist_id)
            if artist is None:
                raise IngestError(f"artist {artist_id} does not exist", 404)
            release = None
            if release_id is not None:
                release = await session.get(Release, release_id)
                if release is None or release.artist_id != artist.id:
                    raise IngestError(f"release {release_id} is not one of this artist's", 404)
            track = await add_track(
                session,
                storage,
                artist,
                incoming,
                inspected,
                release=release,
                album_fallback=album_fallback,
                price_model=price_model,
                stored=stored,
            )
            await session.commit()
            return track
    except BaseException:
        for key in stored:
            storage.delete(key)
        raise
    finally:
        incoming.path.unlink(missing_ok=True)
