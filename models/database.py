"""Engines and sessions for the two supported databases.

Every unit of work opens ONE session, with ``async with``, and says whether it writes:

* a **writing** session (``create_sessionmaker(create_engine(...))``; the app's
  ``resources.sessionmaker``). On SQLite it begins with ``BEGIN IMMEDIATE``: a
  transaction that reads and then writes would otherwise fail at once with "database is
  locked" when another writer committed in between, instead of waiting its turn. SQLite
  has one writer at a time, so the writing engine has one pooled connection per process
  (waiting in the pool's queue is far cheaper than SQLite's sleeping busy handler:
  bench/jobs.py).
* a **reading** session (``create_sessionmaker(create_read_engine(...))``; the app's
  ``resources.read_sessionmaker``). On SQLite its transaction is deferred, on
  connections of their own that are ``query_only``, so it never takes the write lock
  and WAL lets it run next to the writer; on PostgreSQL it is ``READ ONLY``. A write
  attempted in it fails at once, on both databases.

The rule that follows: never open a second session while one is open in the same task
(on SQLite the second waits for the first's connection, for ever), and never hold one
across slow I/O. Sessions made here check it: a nested one is logged, or raises
:class:`NestedSessionError` when ``on_nested="raise"`` (what the tests run with).

Sessions are closed to the end even when their task is cancelled (a client hanging up),
and on SQLite a cancellation does not throw the connection away: the driver runs the
statements of a connection one after the other on a thread of its own, so the rollback
of the close waits for the cancelled statement and the connection goes back clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from types import FrameType
from typing import Any, Literal, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from models import load_all

log = logging.getLogger("playfair.database")
OnNested = Literal["log", "raise"]
T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message says which and why, without a password."""


class NestedSessionError(RuntimeError):
    """A session was opened while another was open in the same task (or in the task that
    started this one): on SQLite the second waits for the first's connection for ever."""


@dataclass(frozen=True)
class DatabaseOptions:
    url: str
    # PostgreSQL: the pool of the process. SQLite: the connections that only read (the
    # one writing connection comes on top).
    pool_size: int = 5
    busy_timeout_seconds: float = 10.0
    echo: bool = False
    on_nested: OnNested = "log"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(options: DatabaseOptions) -> AsyncEngine:
    """The engine of the sessions that write (on PostgreSQL, of every session)."""
    url = make_url(options.url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            echo=options.echo,
            connect_args={"timeout": options.busy_timeout_seconds},
            pool_size=1,
            max_overflow=0,
            pool_timeout=options.busy_timeout_seconds * 3,
        )
        _configure_sqlite(engine, options.busy_timeout_seconds, begin="BEGIN IMMEDIATE")
        return engine
    return create_async_engine(
        url,
        echo=options.echo,
        pool_size=options.pool_size,
        max_overflow=options.pool_size,
        # as on SQLite: a request waits this long for a connection, then is answered 503
        pool_timeout=options.busy_timeout_seconds * 3,
        pool_pre_ping=True,
    )


def create_read_engine(options: DatabaseOptions, writer: AsyncEngine) -> AsyncEngine:
    """The engine of the sessions that only read. PostgreSQL: the writer's pool, each
    transaction ``READ ONLY``. SQLite: connections of their own (WAL lets readers run
    next to the writer), deferred and ``query_only``."""
    url = make_url(options.url)
    if url.get_backend_name() != "sqlite":
        return writer.execution_options(postgresql_readonly=True)
    engine = create_async_engine(
        url,
        echo=options.echo,
        connect_args={"timeout": options.busy_timeout_seconds},
        pool_size=options.pool_size,
        max_overflow=0,
        pool_timeout=options.busy_timeout_seconds * 3,
    )
    _configure_sqlite(engine, options.busy_timeout_seconds, begin="BEGIN DEFERRED", read_only=True)
    return engine


def _configure_sqlite(
    engine: AsyncEngine, busy_timeout_seconds: float, *, begin: str, read_only: bool = False
) -> None:
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
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _keep_connection_when_cancelled(context: Any) -> None:
        # SQLAlchemy treats a cancellation during a statement as a lost connection and
        # throws it away: under clients that hang up, the pool's one connection was
        # re-made again and again. aiosqlite queues a connection's calls on its thread,
        # so the connection is still good: the close's rollback runs after the statement.
        if isinstance(context.original_exception, asyncio.CancelledError):
            context.is_disconnect = False


# --- one session per unit of work -------------------------------------------------------


@dataclass
class _OpenSession:
    task: asyncio.Task[Any] | None
    where: str
    open: bool = True


_open_session: contextvars.ContextVar[_OpenSession | None] = contextvars.ContextVar(
    "playfair_open_session", default=None
)


def _caller() -> str:
    """Where the ``async with`` that opens the session is (file:line in function)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and (
        frame.f_globals.get("__name__") == __name__
        or frame.f_globals.get("__name__", "").startswith("sqlalchemy")
    ):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


class UnitOfWorkSession(AsyncSession):
    """An AsyncSession that knows it is the task's only one, and closes to the end.

    Use it with ``async with``: entering it while another is open in the same task (or
    in a task started while one was open, which inherits the context) is reported;
    leaving it closes the session even when the task is being cancelled."""

    def __init__(self, *args: Any, on_nested: OnNested = "log", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_nested: OnNested = on_nested
        self._marker: _OpenSession | None = None
        self._marker_token: contextvars.Token[_OpenSession | None] | None = None

    async def __aenter__(self) -> UnitOfWorkSession:
        where = _caller()
        outer = _open_session.get()
        if outer is not None and outer.open:
            _report_nested(outer, where, self._on_nested)
        self._marker = _OpenSession(asyncio.current_task(), where)
        self._marker_token = _open_session.set(self._marker)
        return self

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        try:
            await run_to_completion(self.close())
        finally:
            if self._marker is not None:
                self._marker.open = False
            if self._marker_token is not None:
                # ValueError: left in another context (an async generator's)
                with contextlib.suppress(ValueError):
                    _open_session.reset(self._marker_token)


def _report_nested(outer: _OpenSession, where: str, on_nested: OnNested) -> None:
    same_task = outer.task is asyncio.current_task()
    message = (
        f"a database session is opened at {where} while another is open in "
        + ("the same task" if same_task else "the task that started this one")
        + f" (opened at {outer.where}): pass the open session down, or close it first"
        + ("" if same_task else ", or start background work with run_detached()")
    )
    if on_nested == "raise":
        raise NestedSessionError(message)
    log.error(message, stack_info=True)


async def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end even if the calling task is cancelled meanwhile; the
    cancellation is raised once it is done (so a connection is back in its pool, clean,
    before the task ends)."""
    task = asyncio.ensure_future(coro)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.done() and task.cancelled():
                raise
            cancelled = error
    if cancelled is not None:
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.warning("cleaning up after a cancellation failed", exc_info=failure)
        raise cancelled
    return task.result()


def run_detached(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    """Start background work that is not part of the caller's unit of work (it outlives
    it): it may open sessions of its own while the caller's is still open. Never await
    it while holding a session."""
    context = contextvars.copy_context()
    context.run(_open_session.set, None)
    return asyncio.create_task(coro, name=name, context=context)


def create_sessionmaker(
    engine: AsyncEngine, *, on_nested: OnNested = "log"
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``: writing ones on :func:`create_engine`'s, reading ones on
    :func:`create_read_engine`'s."""
    load_all()  # a unit of work orders its writes by the foreign keys of every table
    return async_sessionmaker(
        engine, class_=UnitOfWorkSession, expire_on_commit=False, on_nested=on_nested
    )


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
