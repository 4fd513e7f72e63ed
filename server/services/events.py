"""The jobs that carry catalogue changes to the fediverse, queued in the transaction that
makes the change (so a release is announced exactly when its publication commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import jobs
from models.base import utcnow
from models.catalogue import Release, Track, TrackStatus, Visibility
from server.services.media.sampler import sampler_pending

PUBLISHED_JOB = "federation.release_published"
UPDATED_JOB = "federation.release_updated"
DELETED_JOB = "federation.release_deleted"


async def queue_published_when_ready(session: AsyncSession, release_id: int) -> None:
    """Announce a public release once none of its tracks is still being transcoded and
    its sampler is made (the Note carries it, or a preview), in the caller's transaction.

    Called when a release is published and, in a transaction of its own, after each of
    its tracks is committed as done (see :func:`announce_if_ready`) and after its sampler
    is made or could not be; the unique key makes it one announcement whoever gets there
    first."""
    release = await session.get(Release, release_id)
    if release is None or release.visibility is not Visibility.PUBLIC:
        return
    processing = await session.scalar(
        select(Track.id).where(
            Track.release_id == release_id, Track.status == TrackStatus.PROCESSING
        )
    )
    if processing is not None:
        return
    if await sampler_pending(session, release_id):
        return  # queued: the sampler job comes back here when it is done
    await queue_published(session, release_id)


async def queue_published(session: AsyncSession, release_id: int) -> None:
    """The announcement itself, once (also when the sampler could not be made: the post
    plays the first track's preview then)."""
    try:
        async with session.begin_nested():
            await jobs.enqueue(
                session,
                PUBLISHED_JOB,
                {"release": release_id},
                unique_key=f"published:{release_id}",
            )
    except IntegrityError:
        pass  # queued by a concurrent transaction a moment ago


async def announce_if_ready(
    sessionmaker: async_sessionmaker[AsyncSession], release_id: int
) -> None:
    """After a track's transcoding has committed: check in a new transaction, so that of
    two tracks finishing at once the later one sees the other done (under READ
    COMMITTED, a check inside the same transaction would see it still processing)."""
    async with sessionmaker() as session:
        await queue_published_when_ready(session, release_id)
        await session.commit()


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
