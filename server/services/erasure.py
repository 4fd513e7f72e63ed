"""After an account is deleted: make sure the database keeps no copy of what was deleted.

SQLite zeroes deleted content in place (``secure_delete``, set on every connection), but
the write-ahead log still holds the pages as they were until it is checkpointed and
reset, so deletion checkpoints with ``TRUNCATE`` at once (and again from the worker, in
case another connection was reading and the log could not be reset).

PostgreSQL keeps deleted rows as dead tuples in the table's pages until VACUUM, and
VACUUM only marks their space reusable: the bytes stay until overwritten. ``VACUUM FULL``
writes a new copy of each table and its indexes without them and drops the old files.
It locks the table for the time it takes, so the worker does it, one table at a time,
only for the tables that held the account's names and texts, and gives up after a few
seconds of waiting for the lock (the job is retried later). What no command here can
reach: WAL segments until they are recycled, WAL archives, replicas' and backups' copies
(README: "Your data").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from models import jobs, load_all
from server.runtime.worker import JobContext

log = logging.getLogger("playfair.erasure")

ERASE_JOB = "accounts.erase"
LOCK_TIMEOUT = "5s"


class EraseIncomplete(jobs.TransientJobError):
    """The log could not be reset or a table not rewritten yet; the job retries (an
    expected wait, so the worker logs one line, not a traceback)."""


async def queue_erase(session: AsyncSession, tables: Iterable[str]) -> None:
    """Ask the worker to finish the erasure, in the deleting transaction."""
    names = sorted(set(tables) & set(load_all().tables))
    await jobs.enqueue(session, ERASE_JOB, {"tables": names}, max_attempts=20)


async def _driver(connection: Any) -> Any:
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def checkpoint_sqlite(engine: AsyncEngine, wait_ms: int | None = None) -> bool:
    """Copy the write-ahead log into the database file and truncate it to nothing; True
    if that was done (False when another connection was still reading from the log
    after ``wait_ms``, by default the busy timeout)."""
    async with engine.connect() as connection:
        driver = await _driver(connection)
        cursor = await driver.execute("PRAGMA busy_timeout")
        (busy_timeout,) = await cursor.fetchone()
        if wait_ms is not None:
            await driver.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        try:
            cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _log_frames, _done = await cursor.fetchone()
        finally:
            await driver.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
    return not busy


async def vacuum_postgres(engine: AsyncEngine, tables: Iterable[str]) -> None:
    """Rewrite the tables without their dead rows (outside any transaction)."""
    async with engine.connect() as connection:
        driver = await _driver(connection)
        await driver.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        try:
            for name in tables:
                if name not in load_all().tables:
                    continue  # the payload names tables; only ours are ever vacuumed
                await driver.execute(f'VACUUM (FULL, ANALYZE) "{name}"')
            # ANALYZE keeps sample values of columns (names among them) in pg_statistic;
            # PostgreSQL skips this with a warning when the role may not vacuum it.
            await driver.execute("VACUUM (FULL) pg_catalog.pg_statistic")
        finally:
            await driver.execute("RESET lock_timeout")


async def erase_now(engine: AsyncEngine) -> bool:
    """What can be done at once, right after the deleting transaction committed."""
    if engine.dialect.name == "sqlite":
        # a request waits a second at most for readers; the worker job waits longer
        return await checkpoint_sqlite(engine, wait_ms=1000)
    return False  # PostgreSQL: VACUUM FULL waits for locks; the worker does it


async def run_erase(context: JobContext, payload: dict[str, object]) -> None:
    engine = context.resources.engine
    if engine.dialect.name == "sqlite":
        if not await checkpoint_sqlite(engine):
            raise EraseIncomplete("another connection is reading the write-ahead log")
        return
    tables = payload.get("tables")
    if not isinstance(tables, list):
        raise jobs.PermanentJobError("the erase job names no tables")
    # PostgreSQL's driver is imported here, where PostgreSQL is known to be in use
    from asyncpg.exceptions import LockNotAvailableError  # type: ignore[import-untyped]

    try:
        await vacuum_postgres(engine, [str(name) for name in tables])
    except LockNotAvailableError as exc:  # lock_timeout: a table was busy; later
        raise EraseIncomplete(f"a table was in use: {exc}") from None
    log.info("erased the dead rows of %d tables", len(tables))
