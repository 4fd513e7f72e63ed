"""The job queue: background work as rows, claimed with a lease.

A job is ``pending`` until a worker claims it, which makes it ``running`` with a lease
(``leased_until``, ``leased_by``). The worker that holds the lease finishes it as
``succeeded``, puts it back to ``pending`` with a later ``run_after`` (a retry with
back-off), or marks it ``failed`` when its attempts are used up or the error is
permanent. A worker that dies leaves a ``running`` job whose lease runs out; any worker
may claim it again then. Only the holder of the current lease can finish a job, so a
worker that lost its lease cannot overwrite the result of the one that took over. A job
whose worker died during its last allowed attempt is not run again: the next claim marks
it ``failed`` (a job that kills its worker every time must not take every worker down).
A handler that finds its work held by someone else (a delivery in flight elsewhere) raises
:class:`Postponed`; the job waits until then without using an attempt.

Claiming is one ``UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING``; on PostgreSQL the
inner select takes ``FOR UPDATE SKIP LOCKED`` so that concurrent workers pass each
other's rows instead of queueing on them. SQLite serialises writers, so the statement is
atomic there as it stands.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Text, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, JSONDocument, UTCDateTime, str_enum, utcnow
from models.states import StateMachine


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


JOB_STATES: StateMachine[JobState] = StateMachine(
    "Job.state",
    initial=[JobState.PENDING],
    transitions={
        JobState.PENDING: [JobState.RUNNING],
        JobState.RUNNING: [
            JobState.RUNNING,  # its lease ran out: claimed again
            JobState.SUCCEEDED,
            JobState.PENDING,  # a retry with back-off, or postponed
            JobState.FAILED,
        ],
        JobState.SUCCEEDED: [JobState.PENDING],  # ensure(): a timer that must run again
        JobState.FAILED: [JobState.PENDING],  # an admin's retry, or ensure()
    },
    resting=[JobState.SUCCEEDED, JobState.FAILED],
)


class PermanentJobError(Exception):
    """Raised by a job handler when retrying cannot help (bad payload, gone object)."""


class TransientJobError(Exception):
    """Raised by a job handler when something it needs is away for now (a peer that
    does not answer): retried with back-off like any failure, logged without a trace."""


class Postponed(Exception):
    """Raised by a job handler when its work is held elsewhere until ``until``."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until


DIED_ON_LAST_ATTEMPT = "its worker stopped (killed or crashed) during the last attempt"


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claimable", "state", "run_after"),
        Index("ix_jobs_kind_state", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    state: Mapped[JobState] = mapped_column(str_enum(JobState, 16), default=JobState.PENDING)
    # Enqueueing twice with the same key makes one job (for example one transcode per file).
    unique_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=10)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    leased_by: Mapped[str | None] = mapped_column(String(128), default=None)
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run a job, detached from any session."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lease_token: str


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=5)
    maximum: timedelta = timedelta(hours=1)

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Exponential back-off with full jitter between half and all of the step."""
        step = min(
            self.base.total_seconds() * 2 ** max(attempts - 1, 0), self.maximum.total_seconds()
        )
        jitter = (rng or random).uniform(0.5, 1.0)
        return timedelta(seconds=step * jitter)


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
    unique_key: str | None = None,
    max_attempts: int = 10,
) -> Job:
    """Add a job in the caller's transaction, so it commits with the work that asked for it.

    With a ``unique_key`` that is already queued, the existing job is returned (even a
    finished one: see :func:`ensure` for a job that must run again).
    """
    if unique_key is not None:
        existing = await session.scalar(select(Job).where(Job.unique_key == unique_key))
        if existing is not None:
            return existing
    job = Job(
        kind=kind,
        payload=dict(payload or {}),
        unique_key=unique_key,
        max_attempts=max_attempts,
        run_after=run_after or utcnow(),
    )
    session.add(job)
    await session.flush()
    return job


async def ensure(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    unique_key: str,
    run_after: datetime,
    max_attempts: int = 10,
) -> bool:
    """Make sure a job under ``unique_key`` is still to run: the queued or running one is
    left as it is, a finished one is made pending again with fresh attempts, or a new one
    is queued (in the caller's transaction); True unless one was queued or running
    already. For state kept elsewhere (a delivery) whose timer must not be lost."""
    existing = await session.scalar(select(Job).where(Job.unique_key == unique_key))
    if existing is None:
        await enqueue(
            session,
            kind,
            payload,
            run_after=run_after,
            unique_key=unique_key,
            max_attempts=max_attempts,
        )
        return True
    if existing.state in (JobState.SUCCEEDED, JobState.FAILED):
        existing.state = JOB_STATES.check(existing.state, JobState.PENDING)
        existing.payload = dict(payload)
        existing.attempts = 0
        existing.max_attempts = max_attempts
        existing.run_after = run_after
        existing.finished_at = None
        existing.last_error = None
        await session.flush()
        return True
    return False


async def claim(
    session: AsyncSession,
    worker_id: str,
    *,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    kinds: Sequence[str] | None = None,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``worker_id`` and commit the lease."""
    now = now or utcnow()
    # A fresh token per claim: a job re-claimed after its lease ran out belongs to the
    # new claim only, even if the same worker made both.
    lease_token = f"{worker_id}/{secrets.token_hex(4)}"
    abandoned = (Job.state == JobState.RUNNING) & (Job.leased_until < now)
    await session.execute(
        update(Job)
        .where(abandoned & (Job.attempts >= Job.max_attempts))
        .values(
            state=JOB_STATES.check(JobState.RUNNING, JobState.FAILED),
            leased_by=None,
            leased_until=None,
            last_error=DIED_ON_LAST_ATTEMPT,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    due = or_((Job.state == JobState.PENDING) & (Job.run_after <= now), abandoned)
    candidates = select(Job.id).where(due).order_by(Job.run_after, Job.id).limit(limit)
    if kinds is not None:
        candidates = candidates.where(Job.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(
            state=JOB_STATES.check_all([JobState.PENDING, JobState.RUNNING], JobState.RUNNING),
            leased_by=lease_token,
            leased_until=now + lease,
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(statement)).all()
    await session.commit()
    return [
        ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=dict(row.payload or {}),
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            lease_token=lease_token,
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


def _held(job: ClaimedJob) -> Any:
    return (Job.id == job.id) & (Job.state == JobState.RUNNING) & (Job.leased_by == job.lease_token)


async def extend_lease(
    session: AsyncSession, job: ClaimedJob, lease: timedelta, now: datetime | None = None
) -> bool:
    """Push the lease of a long job further; False if the lease was lost meanwhile."""
    now = now or utcnow()
    result = await session.execute(
        update(Job).where(_held(job)).values(leased_until=now + lease, updated_at=now)
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def complete(session: AsyncSession, job: ClaimedJob, now: datetime | None = None) -> bool:
    """Mark a job succeeded; False (and no change) if this worker no longer holds it."""
    now = now or utcnow()
    result = await session.execute(
        update(Job)
        .where(_held(job))
        .values(
            state=JOB_STATES.check(JobState.RUNNING, JobState.SUCCEEDED),
            leased_by=None,
            leased_until=None,
            last_error=None,
            finished_at=now,
            updated_at=now,
        )
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def fail(
    session: AsyncSession,
    job: ClaimedJob,
    error: str,
    *,
    retry: RetryPolicy,
    permanent: bool = False,
    now: datetime | None = None,
) -> JobState | None:
    """Record a failure: back to pending with back-off, or failed for good.

    Returns the new state, or None if this worker no longer holds the job.
    """
    now = now or utcnow()
    values: dict[str, Any]
    if permanent or job.attempts >= job.max_attempts:
        new_state, values = JobState.FAILED, {"finished_at": now}
    else:
        new_state, values = JobState.PENDING, {"run_after": now + retry.delay(job.attempts)}
    result = await session.execute(
        update(Job)
        .where(_held(job))
        .values(
            **values,
            state=JOB_STATES.check(JobState.RUNNING, new_state),
            leased_by=None,
            leased_until=None,
            last_error=error[:4000],
            updated_at=now,
        )
    )
    await session.commit()
    return new_state if result.rowcount else None  # type: ignore[attr-defined]


async def postpone(
    session: AsyncSession,
    job: ClaimedJob,
    until: datetime,
    reason: str,
    now: datetime | None = None,
) -> bool:
    """Back to pending until ``until``, the attempt not counted; False if not held."""
    now = now or utcnow()
    result = await session.execute(
        update(Job)
        .where(_held(job))
        .values(
            state=JOB_STATES.check(JobState.RUNNING, JobState.PENDING),
            run_after=max(until, now),
            attempts=Job.attempts - 1,
            leased_by=None,
            leased_until=None,
            last_error=reason[:4000],
            updated_at=now,
        )
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def retry_now(session: AsyncSession, job_id: int, now: datetime | None = None) -> bool:
    """An admin's replay: a failed job becomes pending again with a fresh set of attempts."""
    now = now or utcnow()
    result = await session.execute(
        update(Job)
        .where((Job.id == job_id) & (Job.state == JobState.FAILED))
        .values(
            state=JOB_STATES.check(JobState.FAILED, JobState.PENDING),
            attempts=0,
            run_after=now,
            finished_at=None,
            updated_at=now,
        )
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def count_by_state(session: AsyncSession) -> dict[JobState, int]:
    rows = (await session.execute(select(Job.state, func.count()).group_by(Job.state))).all()
    counts = {state: 0 for state in JobState}
    for state, number in rows:
        counts[JobState(state)] = number
    return counts


async def purge_succeeded(session: AsyncSession, finished_before: datetime) -> int:
    """Delete succeeded jobs that finished before the cut-off; failed ones stay for admins."""
    result = await session.execute(
        delete(Job).where(Job.state == JobState.SUCCEEDED, Job.finished_at < finished_before)
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
