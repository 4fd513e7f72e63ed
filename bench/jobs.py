"""Job queue throughput: jobs per second through the worker, next to the raw rate of
one-row update transactions on the same database (the floor cost of a job is about two
such transactions: its share of a claim, and its completion)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import insert, text

from bench.setup import on_both_databases
from models import migrate
from models.base import utcnow
from models.jobs import Job
from server.runtime.config import load_settings
from server.runtime.resources import Resources, open_resources
from server.runtime.worker import JobContext, Worker
from server.services.jobs import worker_options

JOBS = 2000
REFERENCE_TRANSACTIONS = 1000


async def _noop(context: JobContext, payload: dict[str, object]) -> None:
    return None


async def _fill(resources: Resources) -> None:
    now = utcnow()
    async with resources.engine.begin() as connection:
        await connection.execute(text("DELETE FROM jobs"))
        await connection.execute(
            insert(Job),
            [
                {"kind": "noop", "payload": {}, "state": "pending", "attempts": 0,
                 "max_attempts": 10, "run_after": now, "created_at": now, "updated_at": now}
                for _ in range(JOBS)
            ],
        )  # fmt: skip


async def _measure(url: str, data_dir: Path) -> list[str]:
    await migrate.upgrade(url)
    settings = load_settings(
        None,
        environ={},
        overrides={
            "instance": {"data_dir": str(data_dir), "secret": "b" * 48},
            "database": {"url": url},
            "logging": {"level": "ERROR"},
        },
    )
    resources = await open_resources(settings)
    figures = []
    try:
        for concurrency in (1, 16):
            await _fill(resources)
            options = replace(worker_options(settings), concurrency=concurrency)
            worker = Worker(resources, {"noop": _noop}, options)
            started = time.perf_counter()
            done = await worker.run_until_idle(max_rounds=JOBS + 1)
            rate = done / (time.perf_counter() - started)
            figures.append(f"worker, concurrency {concurrency:>2}: {rate:8.0f} jobs/s")
        async with resources.engine.connect() as connection:
            first = int(await connection.scalar(text("SELECT min(id) FROM jobs")) or 1)
        started = time.perf_counter()
        for job_id in range(first, first + REFERENCE_TRANSACTIONS):  # ids are never reused
            async with resources.engine.begin() as connection:
                await connection.execute(
                    text("UPDATE jobs SET attempts = attempts + 1 WHERE id = :id"), {"id": job_id}
                )
        rate = REFERENCE_TRANSACTIONS / (time.perf_counter() - started)
        figures.append(f"reference, one-row update transactions: {rate:8.0f} tx/s")
    finally:
        await resources.close()
    return figures


async def run() -> list[str]:
    return await on_both_databases("bench_jobs", _measure)
