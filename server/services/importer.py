"""`playfair import`: files or folders become releases by their album tags."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.catalogue import Artist, PriceModel
from server.runtime.config import Settings
from server.services.catalogue import publish_release
from server.services.media.ingest import IncomingFile, IngestError, hash_file, ingest
from server.services.media.storage import LocalStorage

AUDIO_SUFFIXES = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".wav",
                  ".wave", ".aif", ".aiff", ".aifc"}  # fmt: skip


@dataclass
class ImportReport:
    imported: int = 0
    release_ids: set[int] = field(default_factory=set)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def find_files(path: Path) -> list[Path]:
    """A file, or the audio files under a folder (by name; the content is checked later)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


async def find_artist(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> Artist:
    async with sessionmaker() as session:
        artist = await session.scalar(select(Artist).where(Artist.name == name.lower()))
    if artist is None:
        raise LookupError(f"there is no artist {name!r}: add it with `playfair artist add`")
    return artist


async def import_files(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    artist_name: str,
    files: list[Path],
    *,
    publish: bool,
    price_model: PriceModel = PriceModel.STREAM_TO_OWN,
    progress: Callable[[Path], None] = lambda _path: None,
) -> ImportReport:
    storage = LocalStorage(settings.media_dir)
    artist = await find_artist(sessionmaker, artist_name)
    report = ImportReport()
    for path in files:
        copy = storage.temporary_file(path.suffix)
        try:
            await asyncio.to_thread(shutil.copyfile, path, copy)
            size, digest = await asyncio.to_thread(hash_file, copy)
            track = await ingest(
                sessionmaker,
                storage,
                artist.id,
                IncomingFile(copy, path.name, size, digest),
                ffmpeg=settings.media.ffmpeg,
                time_limit=settings.media.ffmpeg_timeout.total_seconds(),
                album_fallback=path.parent.name if path.parent.name else None,
                price_model=price_model,
            )
        except (IngestError, OSError) as exc:
            copy.unlink(missing_ok=True)
            report.failures.append((path, str(exc)))
        else:
            report.imported += 1
            report.release_ids.add(track.release_id)
        progress(path)
    if publish and report.release_ids:
        async with sessionmaker() as session:
            for release_id in sorted(report.release_ids):
                await publish_release(session, release_id)
            await session.commit()
    return report
