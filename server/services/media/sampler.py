"""A release's sampler: excerpts of its first tracks, joined with short crossfades, in one
MP3 of at most a minute with the cover and the release's names in its ID3 tag
(docs/architecture.md#federation: a release post carries exactly one audio attachment).

Excerpts come from the tracks' preview clips, never from the full audio, so the sampler
gives away nothing a preview does not. What goes into it (which previews, the cover, the
names) has a digest that names the stored file (``releases/{id}/sampler-{digest}.mp3``):
the sampler is current exactly when the stored one bears the digest of what the release
is now, and a change of tracks or cover makes a new one. A release with fewer than two
previewed tracks has no sampler (its post plays the one preview).

The job that makes it is in :mod:`server.services.media.transcode`; this module plans it
(:func:`sampler_inputs`, :func:`plan_excerpts`, :func:`sampler_command`, :func:`tag_mp3`)
and tells whether the release's post must wait for it (:func:`sampler_pending`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen.id3
import mutagen.mp3
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import jobs
from models.base import utcnow
from models.catalogue import Artist, FileRole, MediaFile, Release, Track, TrackStatus

SAMPLER_JOB = "media.sampler"
SAMPLER_SECONDS = 60.0  # the whole sampler, at most
MAX_SAMPLER_TRACKS = 8  # a longer release: its first eight tracks
MAX_EXCERPT_SECONDS = 20.0  # two or three tracks: 20 s each, not half a minute
CROSSFADE_SECONDS = 1.5
FADE_IN_SECONDS = 0.5
FADE_OUT_SECONDS = 2.0
SAMPLER_VERSION = 1  # bump when the recipe changes: every sampler is made anew
SAMPLE_RATE = 44100


@dataclass(frozen=True)
class SamplerSource:
    track_id: int
    title: str
    storage_key: str  # the track's preview clip
    sha256: str
    seconds: float


@dataclass(frozen=True)
class SamplerInputs:
    release_id: int
    title: str
    artist: str
    sources: tuple[SamplerSource, ...]  # in the release's order, at most MAX_SAMPLER_TRACKS
    cover_key: str | None
    cover_sha256: str | None
    cover_type: str | None

    @property
    def digest(self) -> str:
        described = {
            "version": SAMPLER_VERSION,
            "title": self.title,
            "artist": self.artist,
            "sources": [[s.track_id, s.sha256] for s in self.sources],
            "cover": self.cover_sha256,
        }
        encoded = json.dumps(described, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()

    @property
    def storage_key(self) -> str:
        return f"releases/{self.release_id}/sampler-{self.digest[:16]}.mp3"

    @property
    def job_key(self) -> str:
        return f"sampler:{self.release_id}:{self.digest[:16]}"


@dataclass(frozen=True)
class Excerpt:
    start: float
    length: float


@dataclass(frozen=True)
class SamplerPlan:
    excerpts: tuple[Excerpt, ...]
    crossfade: float

    @property
    def seconds(self) -> float:
        total = sum(e.length for e in self.excerpts)
        return min(total - self.crossfade * (len(self.excerpts) - 1), SAMPLER_SECONDS)


async def sampler_inputs(session: AsyncSession, release_id: int) -> SamplerInputs | None:
    """What the release's sampler is made of now; None if it has none (fewer than two
    ready tracks with a preview, or no such release)."""
    release = await session.get(Release, release_id)
    if release is None:
        return None
    rows = (
        await session.execute(
            select(Track, MediaFile)
            .join(MediaFile, MediaFile.track_id == Track.id)
            .where(
                Track.release_id == release_id,
                Track.status == TrackStatus.READY,
                MediaFile.role == FileRole.PREVIEW_MP3,
            )
            .order_by(Track.disc, Track.position, Track.id)
        )
    ).all()
    if len(rows) < 2:
        return None
    artist = await session.scalar(select(Artist.display_name).where(Artist.id == release.artist_id))
    cover = await session.scalar(
        select(MediaFile).where(
            MediaFile.release_id == release_id, MediaFile.role == FileRole.COVER
        )
    )
    sources = tuple(
        SamplerSource(
            track.id, track.title, file.storage_key, file.sha256, (file.duration_ms or 0) / 1000
        )
        for track, file in rows[:MAX_SAMPLER_TRACKS]
    )
    return SamplerInputs(
        release_id,
        release.title,
        artist or "",
        sources,
        cover.storage_key if cover else None,
        cover.sha256 if cover else None,
        cover.mime_type if cover else None,
    )


async def sampler_pending(session: AsyncSession, release_id: int) -> bool:
    """Whether the release's post must wait for its sampler; queues the job that makes
    it when it is not made yet (in the caller's transaction). A sampler that could not be
    made for what the release is now (its job failed) is waited for no longer: the post
    plays the first track's preview instead."""
    inputs = await sampler_inputs(session, release_id)
    if inputs is None:
        return False
    current = await session.scalar(
        select(MediaFile.storage_key).where(
            MediaFile.release_id == release_id, MediaFile.role == FileRole.SAMPLER
        )
    )
    if current == inputs.storage_key:
        return False
    job = await session.scalar(select(jobs.Job).where(jobs.Job.unique_key == inputs.job_key))
    if job is not None and job.state is jobs.JobState.FAILED:
        return False
    if job is None or job.state is jobs.JobState.SUCCEEDED:
        # new inputs, or inputs it had once and then changed back from: make it (again)
        try:
            async with session.begin_nested():
                await jobs.ensure(
                    session,
                    SAMPLER_JOB,
                    {"release": release_id},
                    unique_key=inputs.job_key,
                    run_after=utcnow(),
                    max_attempts=3,
                )
        except IntegrityError:
            pass  # queued by a concurrent transaction a moment ago
    return True


def plan_excerpts(previews: list[float], preview_fade: float) -> SamplerPlan:
    """Where each excerpt starts in its preview clip and how long it is.

    With ``n`` clips each excerpt is ``(60 s + (n − 1) × crossfade) / n`` long (at most
    20 s), so that the whole stays within a minute; it is taken from the middle of the
    clip before the clip's own fade-out; a shorter clip is taken whole."""
    count = len(previews)
    length = min(
        MAX_EXCERPT_SECONDS, (SAMPLER_SECONDS + (count - 1) * CROSSFADE_SECONDS) / max(count, 1)
    )
    excerpts = []
    for seconds in previews:
        usable = max(seconds - preview_fade, 0.0)
        if usable >= length:
            excerpts.append(Excerpt(round((usable - length) / 2, 3), round(length, 3)))
        else:
            excerpts.append(Excerpt(0.0, round(min(seconds, length), 3)))
    shortest = min((e.length for e in excerpts), default=0.0)
    return SamplerPlan(tuple(excerpts), round(min(CROSSFADE_SECONDS, shortest / 2), 3))


def sampler_command(
    ffmpeg: str, clips: list[Path], plan: SamplerPlan, bitrate: str, target: Path
) -> list[str]:
    """One ffmpeg run: each clip cut to its excerpt and brought to one format, then joined
    pairwise with ``acrossfade``, faded in and out, encoded as MP3 without metadata."""
    args = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y"]
    for clip, excerpt in zip(clips, plan.excerpts, strict=True):
        args += ["-ss", f"{excerpt.start:.3f}", "-t", f"{excerpt.length:.3f}", "-i", str(clip)]
    parts = [
        f"[{index}:a:0]aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}"
        f":channel_layouts=stereo[s{index}]"
        for index in range(len(clips))
    ]
    joined = "s0"
    for index in range(1, len(clips)):
        parts.append(
            f"[{joined}][s{index}]acrossfade=d={plan.crossfade:.3f}:c1=tri:c2=tri[x{index}]"
        )
        joined = f"x{index}"
    fade_out = min(FADE_OUT_SECONDS, plan.seconds / 4)
    parts.append(
        f"[{joined}]afade=t=in:d={FADE_IN_SECONDS:.3f},"
        f"afade=t=out:st={plan.seconds - fade_out:.3f}:d={fade_out:.3f}[out]"
    )
    args += ["-filter_complex", ";".join(parts), "-map", "[out]", "-map_metadata", "-1"]
    args += ["-c:a", "libmp3lame", "-b:a", bitrate, "-t", f"{SAMPLER_SECONDS:.3f}"]
    args += ["-f", "mp3", str(target)]
    return args


def tag_mp3(
    path: Path,
    *,
    title: str,
    artist: str,
    album: str,
    cover: bytes | None,
    cover_type: str | None,
) -> float:
    """Write an ID3v2.3 tag (title, artist, album, the cover as the front-cover APIC) into
    the MP3 at ``path``; return its length in seconds. Synchronous: call it in a thread."""
    id3: Any = mutagen.id3
    audio: Any = mutagen.mp3.MP3(path)  # type: ignore[no-untyped-call]
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    tags.delall("APIC")
    tags.add(id3.TIT2(encoding=3, text=title))
    tags.add(id3.TPE1(encoding=3, text=artist))
    tags.add(id3.TALB(encoding=3, text=album))
    if cover is not None and cover_type:
        tags.add(id3.APIC(encoding=3, mime=cover_type, type=3, desc="Cover", data=cover))
    audio.save(v2_version=3)
    return float(audio.info.length)
