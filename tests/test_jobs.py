"""The job queue on both databases: claiming, retries, leases, competing workers."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import jobs
from models.base import utcnow
from models.jobs import Job, JobState, PermanentJobError, RetryPolicy
from server.runtime.resources import Resources, open_resources
from server.runtime.worker import JobContext, JobHandler, Periodic, Worker, WorkerOptions
from server.services.erasure import EraseIncomplete

OPTIONS = WorkerOptions(concurrency=4, lease=timedelta(seconds=30))


async def add_jobs(resources: Resources, kind: str, count: int, **kwargs: object) -> list[int]:
    async with resources.sessionmaker() as session:
        made = [
            await jobs.enqueue(session, kind, {"n": n}, **kwargs)  # type: ignore[arg-type]
            for n in range(count)
        ]
        await session.commit()
        return [job.id for job in made]


async def get_job(resources: Resources, job_id: int) -> Job:
    async with resources.sessionmaker() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def test_a_job_runs_once_and_succeeds(resources: Resources) -> None:
    seen: list[dict[str, object]] = []

    async def record(context: JobContext, payload: dict[str, object]) -> None:
        seen.append(payload)

    [job_id] = await add_jobs(resources, "record", 1)
    worker = Worker(resources, {"record": record}, OPTIONS)
    assert await worker.run_until_idle() == 1
    assert seen == [{"n": 0}]
    job = await get_job(resources, job_id)
    assert job.state is JobState.SUCCEEDED
    assert job.attempts == 1
    assert job.finished_at is not None
    assert job.leased_by is None
    assert await worker.run_until_idle() == 0


async def test_a_failing_job_is_recorded_and_retried_with_back_off(resources: Resources) -> None:
    calls = 0

    async def flaky(context: JobContext, payload: dict[str, object]) -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError(f"peer unreachable (call {calls})")

    [job_id] = await add_jobs(resources, "flaky", 1)
    policy = RetryPolicy(base=timedelta(seconds=10), maximum=timedelta(hours=1))
    worker = Worker(resources, {"flaky": flaky}, replace(OPTIONS, retry=policy))
    before = utcnow()
    assert await worker.run_until_idle() == 1
    job = await get_job(resources, job_id)
    assert job.state is JobState.PENDING
    assert job.attempts == 1
    assert job.last_error == "ConnectionError: peer unreachable (call 1)"
    # first retry between half and all of the base delay from now
    assert before + timedelta(seconds=5) <= job.run_after <= utcnow() + timedelta(seconds=10)
    assert await worker.run_once() == 0, "not due yet"

    before_second = utcnow()
    assert await worker.run_once(now=job.run_after + timedelta(seconds=1)) == 1
    second = await get_job(resources, job_id)
    assert second.attempts == 2
    # the second delay doubles: between 10 and 20 s after the second failure
    assert before_second + timedelta(seconds=10) <= second.run_after
    assert second.run_after <= utcnow() + timedelta(seconds=20)

    assert await worker.run_once(now=second.run_after + timedelta(seconds=1)) == 1
    done = await get_job(resources, job_id)
    assert done.state is JobState.SUCCEEDED
    assert done.last_error is None
    assert calls == 3


async def test_a_job_fails_for_good_after_its_attempts(resources: Resources) -> None:
    async def broken(context: JobContext, payload: dict[str, object]) -> None:
        raise RuntimeError("always")

    [job_id] = await add_jobs(resources, "broken", 1, max_attempts=2)
    worker = Worker(resources, {"broken": broken}, OPTIONS)
    await worker.run_once()
    job = await get_job(resources, job_id)
    assert job.state is JobState.PENDING
    await worker.run_once(now=job.run_after + timedelta(seconds=1))
    job = await get_job(resources, job_id)
    assert job.state is JobState.FAILED
    assert job.attempts == 2
    assert job.last_error == "RuntimeError: always"
    assert await worker.run_once(now=utcnow() + timedelta(days=30)) == 0

    async with resources.sessionmaker() as session:
        assert await jobs.retry_now(session, job_id)
    replayed = await get_job(resources, job_id)
    assert replayed.state is JobState.PENDING
    assert replayed.attempts == 0


async def test_permanent_errors_and_unknown_kinds_are_not_retried(resources: Resources) -> None:
    async def refuses(context: JobContext, payload: dict[str, object]) -> None:
        raise PermanentJobError("payload names no track")

    [refused] = await add_jobs(resources, "refuses", 1)
    [unknown] = await add_jobs(resources, "no-such-kind", 1)
    worker = Worker(resources, {"refuses": refuses}, OPTIONS)
    assert await worker.run_until_idle() == 2
    refused_job = await get_job(resources, refused)
    unknown_job = await get_job(resources, unknown)
    assert (refused_job.state, refused_job.last_error) == (
        JobState.FAILED,
        "payload names no track",
    )
    assert unknown_job.state is JobState.FAILED
    assert unknown_job.last_error == "no handler for job kind 'no-such-kind'"


async def test_lease_expiry_lets_another_worker_take_over(resources: Resources) -> None:
    [job_id] = await add_jobs(resources, "k", 1)
    lease = timedelta(seconds=30)
    now = utcnow()
    async with resources.sessionmaker() as session:
        [first] = await jobs.claim(session, "worker-a", limit=10, lease=lease, now=now)
    async with resources.sessionmaker() as session:
        assert await jobs.claim(session, "worker-b", limit=10, lease=lease, now=now) == []
        # renewing pushes the lease out
        assert await jobs.extend_lease(session, first, lease, now=now + timedelta(seconds=20))
        later = now + timedelta(seconds=31)
        assert await jobs.claim(session, "worker-b", limit=10, lease=lease, now=later) == []
        # worker A goes silent: after its renewed lease runs out B takes the job
        expired = now + timedelta(seconds=51)
        [second] = await jobs.claim(session, "worker-b", limit=10, lease=lease, now=expired)
    assert second.id == job_id
    assert second.attempts == 2
    async with resources.sessionmaker() as session:
        # A cannot finish, fail or renew what is no longer its own
        assert not await jobs.complete(session, first)
        assert await jobs.fail(session, first, "late", retry=RetryPolicy()) is None
        assert not await jobs.extend_lease(session, first, lease)
        assert await jobs.complete(session, second)
    job = await get_job(resources, job_id)
    assert job.state is JobState.SUCCEEDED


async def test_a_handler_that_lost_its_lease_is_stopped(resources: Resources) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def endless(context: JobContext, payload: dict[str, object]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    [job_id] = await add_jobs(resources, "endless", 1)
    options = replace(OPTIONS, lease=timedelta(seconds=0.3))
    worker = Worker(resources, {"endless": endless}, options, worker_id="slow")
    [claimed] = await worker.claim(1)
    running = asyncio.create_task(worker.run_job(claimed))
    await started.wait()
    # another worker takes the job over as if the lease had run out
    async with resources.sessionmaker() as session:
        [taken] = await jobs.claim(
            session, "other", limit=1, lease=timedelta(hours=1), now=utcnow() + timedelta(hours=1)
        )
    assert taken.id == job_id
    assert await asyncio.wait_for(running, timeout=30) is None
    assert cancelled.is_set()
    job = await get_job(resources, job_id)
    assert job.state is JobState.RUNNING
    assert job.leased_by == taken.lease_token


async def test_a_job_whose_worker_died_on_its_last_attempt_is_not_run_again(
    resources: Resources,
) -> None:
    """A job that kills its worker (out of memory, a crash) must not take every worker
    down in turn: once its attempts are used up by dead workers, the next claim fails it."""
    [job_id] = await add_jobs(resources, "deadly", 1, max_attempts=2)
    lease = timedelta(seconds=30)
    now = utcnow()
    async with resources.sessionmaker() as session:
        [first] = await jobs.claim(session, "a", limit=1, lease=lease, now=now)
        later = now + timedelta(seconds=31)  # worker a died; b takes over: attempt 2 of 2
        [second] = await jobs.claim(session, "b", limit=1, lease=lease, now=later)
        assert (first.id, second.id, second.attempts) == (job_id, job_id, 2)
        # worker b dies too: nobody runs it a third time
        assert await jobs.claim(session, "c", limit=1, lease=lease, now=later + lease * 2) == []
    job = await get_job(resources, job_id)
    assert (job.state, job.attempts, job.leased_by) == (JobState.FAILED, 2, None)
    assert job.last_error == jobs.DIED_ON_LAST_ATTEMPT
    async with resources.sessionmaker() as session:  # an admin may still run it again
        assert await jobs.retry_now(session, job_id)


async def test_a_postponed_job_waits_without_using_an_attempt(resources: Resources) -> None:
    until = utcnow() + timedelta(minutes=5)
    calls = 0

    async def busy(context: JobContext, payload: dict[str, object]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise jobs.Postponed(until, "held elsewhere")

    [job_id] = await add_jobs(resources, "busy", 1, max_attempts=1)
    worker = Worker(resources, {"busy": busy}, OPTIONS)
    assert await worker.run_until_idle() == 1
    job = await get_job(resources, job_id)
    assert (job.state, job.attempts, job.run_after, job.last_error) == (
        JobState.PENDING, 0, until, "held elsewhere",
    )  # fmt: skip
    assert await worker.run_once() == 0  # not before then
    assert await worker.run_once(now=until) == 1
    job = await get_job(resources, job_id)
    assert (job.state, job.attempts, calls) == (JobState.SUCCEEDED, 1, 2)


async def test_a_transient_error_is_retried_and_logged_without_a_trace(
    resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    async def away(context: JobContext, payload: dict[str, object]) -> None:
        raise jobs.TransientJobError("the peer does not answer")

    caplog.set_level(logging.INFO, logger="playfair.worker")
    [job_id] = await add_jobs(resources, "away", 1)
    assert await Worker(resources, {"away": away}, OPTIONS).run_until_idle() == 1
    job = await get_job(resources, job_id)
    assert (job.state, job.attempts, job.last_error) == (
        JobState.PENDING, 1, "the peer does not answer",
    )  # fmt: skip
    [record] = [r for r in caplog.records if r.name == "playfair.worker"]
    assert record.exc_info is None and "will be retried" in record.getMessage()


async def test_an_erasure_waiting_for_a_reader_is_one_line_not_a_traceback(
    resources: Resources, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by a browser test that forbids tracebacks in an instance's output: the erase
    # job's expected wait for a reader of the write-ahead log was logged as a failure.
    async def busy(context: JobContext, payload: dict[str, object]) -> None:
        raise EraseIncomplete("another connection is reading the write-ahead log")

    caplog.set_level(logging.INFO, logger="playfair.worker")
    await add_jobs(resources, "busy", 1)
    assert await Worker(resources, {"busy": busy}, OPTIONS).run_until_idle() == 1
    [record] = [r for r in caplog.records if r.name == "playfair.worker"]
    assert record.exc_info is None and "will be retried" in record.getMessage()


async def test_ensure_keeps_a_queued_job_and_revives_a_finished_one(resources: Resources) -> None:
    now = utcnow()
    async with resources.sessionmaker() as session:
        assert await jobs.ensure(session, "t", {"n": 1}, unique_key="t:1", run_after=now)
        assert not await jobs.ensure(session, "t", {"n": 1}, unique_key="t:1", run_after=now)
        await session.commit()
        [claimed] = await jobs.claim(session, "w", limit=1, lease=timedelta(seconds=30))
        assert await jobs.fail(session, claimed, "boom", retry=RetryPolicy(), permanent=True)
        assert await jobs.ensure(session, "t", {"n": 2}, unique_key="t:1", run_after=now)
        await session.commit()
        assert await session.scalar(select(func.count()).select_from(Job)) == 1
    job = await get_job(resources, claimed.id)
    assert (job.state, job.attempts, job.payload, job.last_error) == (
        JobState.PENDING, 0, {"n": 2}, None,
    )  # fmt: skip


async def test_two_workers_never_run_one_job_twice(resources: Resources) -> None:
    runs: Counter[int] = Counter()
    ran_by: dict[int, str] = {}

    def handler_for(name: str) -> JobHandler:
        async def handler(context: JobContext, payload: dict[str, object]) -> None:
            runs[context.job.id] += 1
            ran_by[context.job.id] = name
            await asyncio.sleep(0)  # hand the loop to the other worker mid-job

        return handler

    job_ids = await add_jobs(resources, "count", 120)
    other_resources = await open_resources(resources.settings)  # its own connection pool
    try:
        worker_a = Worker(resources, {"count": handler_for("a")}, OPTIONS, worker_id="a")
        worker_b = Worker(other_resources, {"count": handler_for("b")}, OPTIONS, worker_id="b")
        done_a, done_b = await asyncio.gather(worker_a.run_until_idle(), worker_b.run_until_idle())
    finally:
        await other_resources.close()
    assert done_a + done_b == 120
    assert set(runs) == set(job_ids)
    assert max(runs.values()) == 1
    async with resources.sessionmaker() as session:
        states = await jobs.count_by_state(session)
    assert states[JobState.SUCCEEDED] == 120
    assert states[JobState.PENDING] == states[JobState.RUNNING] == 0


async def test_unique_key_makes_one_job(resources: Resources) -> None:
    async with resources.sessionmaker() as session:
        first = await jobs.enqueue(session, "transcode", {"file": 1}, unique_key="transcode:1")
        second = await jobs.enqueue(session, "transcode", {"file": 1}, unique_key="transcode:1")
        await session.commit()
        assert first.id == second.id
        assert await session.scalar(select(func.count()).select_from(Job)) == 1


async def test_periodic_jobs_are_enqueued_once_per_period(resources: Resources) -> None:
    periodic = Periodic("tick", timedelta(hours=1))
    worker = Worker(resources, {}, OPTIONS, periodic=(periodic,))
    start = utcnow().replace(minute=0, second=0, microsecond=0)
    await worker.schedule_periodic(start + timedelta(minutes=1))
    await worker.schedule_periodic(start + timedelta(minutes=59))
    await worker.schedule_periodic(start + timedelta(minutes=61))
    async with resources.sessionmaker() as session:
        keys = (await session.scalars(select(Job.unique_key).order_by(Job.id))).all()
    assert len(keys) == 2
    assert keys[0] != keys[1]


async def test_purge_keeps_failed_and_recent_jobs(resources: Resources) -> None:
    async def ok(context: JobContext, payload: dict[str, object]) -> None:
        return None

    async def bad(context: JobContext, payload: dict[str, object]) -> None:
        raise PermanentJobError("no")

    await add_jobs(resources, "ok", 3)
    await add_jobs(resources, "bad", 2)
    await Worker(resources, {"ok": ok, "bad": bad}, OPTIONS).run_until_idle()
    async with resources.sessionmaker() as session:
        assert await jobs.purge_succeeded(session, utcnow() - timedelta(days=1)) == 0
        assert await jobs.purge_succeeded(session, utcnow() + timedelta(seconds=1)) == 3
        states = await jobs.count_by_state(session)
    assert states[JobState.FAILED] == 2
    assert states[JobState.SUCCEEDED] == 0


async def test_run_forever_works_through_the_queue_and_stops(resources: Resources) -> None:
    all_done = asyncio.Event()
    seen: set[int] = set()

    async def record(context: JobContext, payload: dict[str, object]) -> None:
        seen.add(context.job.id)
        if len(seen) == 10:
            all_done.set()

    await add_jobs(resources, "record", 10)
    stop = asyncio.Event()
    worker = Worker(resources, {"record": record}, OPTIONS)
    task = asyncio.create_task(worker.run_forever(stop))
    await asyncio.wait_for(all_done.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    async with resources.sessionmaker() as session:
        states = await jobs.count_by_state(session)
    assert states[JobState.SUCCEEDED] == 10


def test_retry_delay_grows_and_is_capped() -> None:
    import random

    policy = RetryPolicy(base=timedelta(seconds=5), maximum=timedelta(minutes=1))
    rng = random.Random(1)  # noqa: S311 - jitter, not secrets
    delays = [policy.delay(n, rng).total_seconds() for n in range(1, 8)]
    for attempt, delay in enumerate(delays, start=1):
        step = min(5 * 2 ** (attempt - 1), 60)
        assert step / 2 <= delay <= step


@pytest.mark.parametrize("count", [0, 1])
async def test_claim_respects_the_limit(resources: Resources, count: int) -> None:
    await add_jobs(resources, "k", 3)
    async with resources.sessionmaker() as session:
        claimed = await jobs.claim(session, "w", limit=count, lease=timedelta(seconds=5))
    assert len(claimed) == count
