"""The jobs that carry catalogue changes to the fediverse, queued in the transaction that
makes the change (so a release is announced exactly when its publication commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import jobs
from models.base import utcnow
from models.catalogue import Release, Track, TrackStatus, Visibility

PUBLISHED_JOB = "federation.release_published"
UPDATED_JOB = "federation.release_updated"
DELETED_JOB = "federation.release_deleted"


async def queue_published_when_ready(session: AsyncSession, release_id: int) -> None:
    """Announce a public release once none of its tracks is still being transcoded (the
    Note carries their previews). Called when it is published and when each of its
    tracks finishes; the unique key makes it one announcement."""
    release = await session.get(Release, release_id)
    if release is None or release.visibility is not Visibility.PUBLIC:
        return
    processing = await session.scalar(
        select(Track.id).where(
            Track.release_id == release_id, Track.status == TrackStatus.PROCESSING
        )
    )
    if processing is None:
        await jobs.enqueue(
            session, PUBLISHED_JOB, {"release": release_id}, unique_key=f"published:{release_id}"
        )


async def queue_updated(session: AsyncSession, release_id: int, version: datetime) -> None:
    stamp = round(version.timestamp() * 1000)  # milliseconds: two quick edits, two Updates
    await jobs.enqueue(
        session,
        UPDATED_JOB,
        {"release": release_id, "version": stamp},
        unique_key=f"updated:{release_id}:{stamp}",
    )


async def queue_deleted(session: AsyncSession, release: Release, artist_name: str) -> None:
    await jobs.enqueue(
        session,
        DELETED_JOB,
        {"release": release.id, "artist": artist_name, "at": int(utcnow().timestamp())},
        unique_key=f"deleted:{release.id}:{int(utcnow().timestamp())}",
    )
