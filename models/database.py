"""Engines and sessions for the two supported databases.

SQLite (the embedded default) runs in WAL mode with a busy timeout, foreign keys on, and
every transaction begun with ``BEGIN IMMEDIATE``: a transaction that reads and then
writes would otherwise fail at once with "database is locked" when another writer got
there first, instead of waiting its turn. PostgreSQL needs none of that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message says which and why, without a password."""


@dataclass(frozen=True)
class DatabaseOptions:
    url: str
    pool_size: int = 5
    busy_timeout_seconds: float = 10.0
    echo: bool = False


def create_engine(options: DatabaseOptions) -> AsyncEngine:
    url = make_url(options.url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            echo=options.echo,
            connect_args={"timeout": options.busy_timeout_seconds},
            # One connection per process: every transaction takes the write lock anyway
            # (BEGIN IMMEDIATE), and waiting in the pool's queue is far cheaper than
            # SQLite's sleeping busy handler (bench/jobs.py: 4-5x the jobs/s with 16
            # jobs in flight). The rule that follows: never open a second session while
            # holding one, and never hold one across slow I/O.
            pool_size=1,
            max_overflow=0,
            pool_timeout=options.busy_timeout_seconds * 3,
        )
        _configure_sqlite(engine, options.busy_timeout_seconds)
        return engine
    return create_async_engine(
        url,
        echo=options.echo,
        pool_size=options.pool_size,
        max_overflow=options.pool_size,
        pool_pre_ping=True,
    )


def _configure_sqlite(engine: AsyncEngine, busy_timeout_seconds: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left behind
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def describe_url(url: str) -> str:
    """The URL as safe to print: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


async def check_connection(engine: AsyncEngine, wait_seconds: float = 10.0) -> None:
    """Run ``SELECT 1``; raise DatabaseUnavailable with a one-line reason on failure."""
    try:
        async with asyncio.timeout(wait_seconds):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except TimeoutError:
        raise DatabaseUnavailable(
            f"database {describe_url(str(engine.url))} did not answer within {wait_seconds:g} s"
        ) from None
    except (OSError, OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to database {describe_url(str(engine.url))}: {_reason(exc)}"
        ) from None
    except Exception as exc:  # asyncpg raises its own classes for auth and missing databases
        if type(exc).__module__.startswith("asyncpg"):
            raise DatabaseUnavailable(
                f"cannot connect to database {describe_url(str(engine.url))}: {_reason(exc)}"
            ) from None
        raise


def _reason(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text_ = (
        str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    )
    if isinstance(original, OSError) and original.strerror:
        text_ = original.strerror
    return text_.removeprefix("(sqlite3.OperationalError) ")
