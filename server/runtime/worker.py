"""The worker: claims jobs with a lease and runs the handler registered for each kind.

``run_once`` claims a batch and runs it to the end (tests call it instead of sleeping);
``run_forever`` keeps up to ``concurrency`` jobs in flight, polls when idle, renews the
lease of long jobs, and survives the database going away (it logs and waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models import jobs
from models.base import utcnow
from models.jobs import (
    ClaimedJob,
    JobState,
    PermanentJobError,
    Postponed,
    RetryPolicy,
    TransientJobError,
)
from server.runtime.resources import Resources

log = logging.getLogger("playfair.worker")


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its payload."""

    job: ClaimedJob
    resources: Resources

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.resources.sessionmaker


JobHandler = Callable[[JobContext, dict[str, object]], Awaitable[None]]


@dataclass(frozen=True)
class Periodic:
    """A job kind that the worker enqueues once per ``every`` (one row per period)."""

    kind: str
    every: timedelta

    def unique_key(self, now: datetime) -> str:
        period = int(now.timestamp() // self.every.total_seconds())
        return f"periodic:{self.kind}:{period}"


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 4
    lease: timedelta = timedelta(seconds=60)
    poll_interval: timedelta = timedelta(seconds=1)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(
        self,
        resources: Resources,
        handlers: Mapping[str, JobHandler],
        options: WorkerOptions,
        *,
        periodic: tuple[Periodic, ...] = (),
        worker_id: str | None = None,
    ) -> None:
        self.resources = resources
        self.handlers = dict(handlers)
        self.options = options
        self.periodic = periodic
        self.worker_id = worker_id or new_worker_id()
        self._scheduled: set[str] = set()  # periodic rows this process has made

    async def schedule_periodic(self, now: datetime | None = None) -> None:
        if not self.periodic:
            return
        now = now or utcnow()
        due = {item.unique_key(now): item for item in self.periodic}
        if due.keys() <= self._scheduled:
            return  # this period's rows are in already: no write per claim round
        async with self.resources.sessionmaker() as session:
            for key, item in due.items():
                await jobs.enqueue(session, item.kind, unique_key=key)
            await session.commit()
        self._scheduled = set(due)

    async def claim(self, limit: int, now: datetime | None = None) -> list[ClaimedJob]:
        async with self.resources.sessionmaker() as session:
            return await jobs.claim(
                session, self.worker_id, limit=limit, lease=self.options.lease, now=now
            )

    async def run_once(self, now: datetime | None = None) -> int:
        """Claim up to ``concurrency`` due jobs, run them all, return how many ran."""
        claimed = await self.claim(self.options.concurrency, now)
        await asyncio.gather(*(self.run_job(job) for job in claimed))
        return len(claimed)

    async def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Run due jobs until none is left (jobs that retry later are not waited for)."""
        total = 0
        for _ in range(max_rounds):
            ran = await self.run_once()
            if ran == 0:
                return total
            total += ran
        raise RuntimeError(f"jobs still due after {max_rounds} rounds")

    async def run_job(self, job: ClaimedJob) -> JobState | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            return await self._record_failure(
                job, f"no handler for job kind {job.kind!r}", permanent=True
            )
        lease_lost = asyncio.Event()
        work = asyncio.ensure_future(handler(JobContext(job, self.resources), job.payload))
        heartbeat = asyncio.create_task(self._keep_lease(job, work, lease_lost))
        try:
            await work
        except asyncio.CancelledError:
            if lease_lost.is_set():
                return None
            raise
        except PermanentJobError as exc:
            return await self._record_failure(job, str(exc), permanent=True)
        except TransientJobError as exc:
            log.info("job %s (%s) will be retried: %s", job.id, job.kind, exc)
            return await self._record_failure(job, str(exc), permanent=False)
        except Postponed as later:
            async with self.resources.sessionmaker() as session:
                held = await jobs.postpone(session, job, later.until, str(later))
            return JobState.PENDING if held else None
        except Exception as exc:
            log.warning(
                "job %s (%s) failed on attempt %s", job.id, job.kind, job.attempts, exc_info=True
            )
            detail = "".join(traceback.format_exception_only(exc)).strip()
            return await self._record_failure(job, detail, permanent=False)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        async with self.resources.sessionmaker() as session:
            if await jobs.complete(session, job):
                return JobState.SUCCEEDED
        log.warning("job %s finished after its lease was lost; result not recorded", job.id)
        return None

    async def _record_failure(
        self, job: ClaimedJob, error: str, *, permanent: bool
    ) -> JobState | None:
        async with self.resources.sessionmaker() as session:
            state = await jobs.fail(
                session, job, error, retry=self.options.retry, permanent=permanent
            )
        if state is JobState.FAILED:
            log.error("job %s (%s) failed for good: %s", job.id, job.kind, error)
        return state

    async def _keep_lease(
        self, job: ClaimedJob, work: asyncio.Future[None], lease_lost: asyncio.Event
    ) -> None:
        """Renew the lease at a third of its length while the handler runs.

        If the lease was lost (the worker stalled past it and another took the job),
        the handler is cancelled: the other worker owns the job now.
        """
        interval = self.options.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.resources.sessionmaker() as session:
                    still_ours = await jobs.extend_lease(session, job, self.options.lease)
            except Exception:
                log.warning("could not renew the lease of job %s", job.id, exc_info=True)
                continue
            if not still_ours:
                log.warning("lost the lease of job %s; stopping it", job.id)
                lease_lost.set()
                work.cancel()
                return

    async def run_forever(self, stop: asyncio.Event) -> None:
        log.info("worker %s started (concurrency %s)", self.worker_id, self.options.concurrency)
        inflight: set[asyncio.Task[JobState | None]] = set()
        poll = self.options.poll_interval.total_seconds()
        while not stop.is_set():
            claimed: list[ClaimedJob] = []
            free = self.options.concurrency - len(inflight)
            if free > 0:
                try:
                    await self.schedule_periodic()
                    claimed = await self.claim(free)
                except Exception:
                    log.warning("cannot claim jobs; retrying in %ss", poll * 5, exc_info=True)
                    await _wait(stop, poll * 5)
                    continue
            for job in claimed:
                task = asyncio.create_task(self.run_job(job), name=f"job-{job.id}")
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if claimed and len(inflight) < self.options.concurrency:
                continue  # there may be more due work
            waiters: set[asyncio.Future[object]] = set(inflight)  # type: ignore[arg-type]
            stopper = asyncio.ensure_future(stop.wait())
            waiters.add(stopper)  # type: ignore[arg-type]
            await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
        if inflight:
            log.info("worker stopping; waiting for %s running jobs", len(inflight))
            _done, pending = await asyncio.wait(
                inflight, timeout=self.options.lease.total_seconds()
            )
            for task in pending:
                task.cancel()  # their leases run out and another worker takes them
        log.info("worker %s stopped", self.worker_id)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
