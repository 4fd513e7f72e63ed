"""The jobs that carry catalogue changes to the fediverse, queued in the transaction that
makes the change (so a release is announced exactly when its publication commits)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from models import jobs
from models.base import utcnow
from models.catalogue import Release

PUBLISHED_JOB = "federation.release_published"
UPDATED_JOB = "federation.release_updated"
DELETED_JOB = "federation.release_deleted"


async def queue_published(session: AsyncSession, release_id: int) -> None:
    await jobs.enqueue(
        session,
        PUBLISHED_JOB,
        {"release": release_id, "since": int(utcnow().timestamp())},
        unique_key=f"published:{release_id}",
    )


async def queue_updated(session: AsyncSession, release_id: int, version: datetime) -> None:
    stamp = int(version.timestamp())
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
