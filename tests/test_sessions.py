"""One database session per unit of work, sessions that only read, and sessions that
survive their task being cancelled, on both databases."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from models.catalogue import Release, ReleaseKind, Track, TrackStatus, Visibility
from models.database import (
    DatabaseOptions,
    NestedSessionError,
    create_engine,
    create_read_engine,
    create_sessionmaker,
    run_detached,
)
from models.handles import Handle
from models.users import Role
from server.services.account_rules import create_user
from server.services.catalogue import create_artist, find_or_create_release
from server.web.current import resources_of
from tests.test_account_pages import PASSWORD, csrf, log_in


@dataclass
class Engines:
    writer: AsyncEngine
    reader: AsyncEngine
    write: async_sessionmaker[AsyncSession]
    read: async_sessionmaker[AsyncSession]
    connects: list[str]


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[Engines]:
    options = DatabaseOptions(url=database_url, busy_timeout_seconds=2, on_nested="raise")
    writer = create_engine(options)
    reader = create_read_engine(options, writer)
    connects: list[str] = []
    event.listen(writer.sync_engine.pool, "connect", lambda *_: connects.append("writer"))
    try:
        yield Engines(
            writer, reader, create_sessionmaker(writer, on_nested="raise"),
            create_sessionmaker(reader, on_nested="raise"), connects,
        )  # fmt: skip
    finally:
        await reader.dispose()
        await writer.dispose()


# --- the guard ---------------------------------------------------------------------------


async def test_a_session_inside_a_session_is_refused(engines: Engines) -> None:
    async with engines.write() as outer:
        await outer.execute(text("SELECT 1"))
        with pytest.raises(NestedSessionError) as raised:
            async with engines.read():
                pass
        # the message names both places
        assert raised.value.args[0].count("test_sessions.py") == 2
        await outer.execute(text("SELECT 1"))  # the outer one still works
    for sessions in (engines.read, engines.write):  # one after the other: fine
        async with sessions() as after:
            await after.execute(text("SELECT 1"))


async def test_a_task_started_inside_a_session_may_not_open_one(engines: Engines) -> None:
    """gather() inside a session: the child inherits the context, and on SQLite it would
    wait for the connection its parent holds while the parent waits for it."""

    async def child() -> None:
        async with engines.write() as session:
            await session.execute(text("SELECT 1"))

    async with engines.write() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(NestedSessionError, match="the task that started this one"):
            await asyncio.gather(child())
        # background work that outlives the unit of work says so
        detached = run_detached(child())
    await detached  # (awaited only once the session is closed)


async def test_in_production_a_nested_session_is_logged(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(DatabaseOptions(url=database_url))
    sessions = create_sessionmaker(engine)  # on_nested="log", the default
    try:
        async with sessions():
            with caplog.at_level(logging.ERROR, logger="playfair.database"):
                async with sessions():
                    pass
    finally:
        await engine.dispose()
    [record] = caplog.records
    assert "while another is open in the same task" in record.getMessage()


# --- reads and writes ----------------------------------------------------------------------


async def test_a_reading_session_cannot_write(engines: Engines) -> None:
    async with engines.read() as session:
        with pytest.raises(DBAPIError, match=r"readonly|read-only"):
            await session.execute(text("UPDATE users SET email = 'x@example.org'"))
    async with engines.write() as session:  # the writer still can
        await session.execute(text("UPDATE users SET email = 'x@example.org'"))
        await session.commit()


async def test_a_long_read_does_not_hold_up_writers(engines: Engines) -> None:
    """A read in progress (its snapshot open, as a slow page's) and writers from this
    engine and from a second one (another process, on SQLite) all get through at once."""
    reading, done = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def slow_page() -> None:
        async with engines.read() as session:
            seen.append(await session.scalar(text("SELECT count(*) FROM users")) or 0)
            reading.set()
            await done.wait()
            seen.append(await session.scalar(text("SELECT count(*) FROM users")) or 0)

    other = create_engine(DatabaseOptions(url=str(engines.writer.url), busy_timeout_seconds=2))
    page = asyncio.create_task(slow_page())
    try:
        await reading.wait()
        # The read ends only once both writes are done (``done`` is set after them), so a
        # writer that waited for it would wait out its busy timeout and fail ("database is
        # locked"): getting through at all is the proof, on a machine of any speed.
        async with engines.write() as session:
            await create_user(session, "ana", PASSWORD, Role.LISTENER)
        async with create_sessionmaker(other)() as session:
            await create_user(session, "ben", PASSWORD, Role.LISTENER)
        assert not page.done()  # the read was still open while they wrote
    finally:
        done.set()
        await page
        await other.dispose()
    if engines.writer.dialect.name == "sqlite":
        assert seen == [0, 0]  # WAL: the read keeps its snapshot
    async with engines.read() as session:
        assert await session.scalar(text("SELECT count(*) FROM users")) == 2


# --- cancellation ---------------------------------------------------------------------------


def slow_query(engine: AsyncEngine) -> str:
    if engine.dialect.name == "sqlite":
        return (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*) FROM n"
        )
    return "SELECT pg_sleep(0.5)"


@pytest.mark.parametrize("kind", ["write", "read"])
async def test_a_cancelled_unit_of_work_gives_its_connection_back_clean(
    engines: Engines, kind: str
) -> None:
    """A client hanging up cancels its request's task in the middle of a statement. The
    connection goes back to the pool, its transaction rolled back (nothing half-written,
    no lock held), and on SQLite it is not thrown away and made again."""
    sessions = engines.write if kind == "write" else engines.read
    engine = engines.writer if kind == "write" else engines.reader
    running = asyncio.Event()

    def mark(*_args: Any) -> None:
        running.set()

    async def unit_of_work() -> None:
        async with sessions() as session:
            if kind == "write":  # half-way through: written, not committed
                await session.execute(
                    text("INSERT INTO handles (name, kind) VALUES ('half', 'user')")
                )
            event.listen(engine.sync_engine, "before_cursor_execute", mark)
            await session.execute(text(slow_query(engine)))
            await session.commit()

    for _ in range(3):
        running.clear()
        task = asyncio.create_task(unit_of_work())
        started = asyncio.create_task(running.wait())
        await asyncio.wait([started, task], timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task.done():  # failed before its slow statement: for example "database is locked"
            started.cancel()
            task.result()
        assert started.done(), "the slow statement did not start"
        event.remove(engine.sync_engine, "before_cursor_execute", mark)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    async with engines.write() as session:  # writes at once (no lock left behind)
        assert await session.scalar(select(Handle).where(Handle.name == "half")) is None
        await create_user(session, "whole", PASSWORD, Role.LISTENER)
    if engines.writer.dialect.name == "sqlite":
        assert engines.connects == ["writer"]


# --- the pages that opened a session inside another ----------------------------------------


async def test_the_publish_button_publishes_at_once(app: Quart, client: Client) -> None:
    """The dashboard's Publish button opened a second session inside its first: on SQLite
    it waited 30 s for its own connection, answered 500, and froze the instance."""
    async with resources_of(app).sessionmaker() as session:
        mira = await create_user(session, "mira", PASSWORD, Role.ARTIST)
        aurora = await create_artist(session, "aurora", mira)
        release, _made = await find_or_create_release(
            session, aurora, "Tide Tables", kind=ReleaseKind.ALBUM
        )
        session.add(
            Track(release_id=release.id, artist_id=aurora.id, title="Ebb", slug="ebb",
                  status=TrackStatus.READY)
        )  # fmt: skip
        await session.commit()
        release_id, artist_id = release.id, aurora.id
    assert (await log_in(client, "mira")).status_code == 303
    token = await csrf(client, "/dashboard")
    started = time.monotonic()
    published = await client.post(
        f"/dashboard/releases/{release_id}/publish", form={"csrf_token": token}
    )
    assert published.status_code == 303, await published.get_data(as_text=True)
    assert "message=Published" in published.headers["Location"]
    saved = await client.post(
        f"/dashboard/artists/{artist_id}/settings",
        form={"csrf_token": token, "approves_followers": "1"},
    )
    assert saved.status_code == 303
    assert time.monotonic() - started < 5
    async with resources_of(app).read_sessionmaker() as session:
        stored = await session.get(Release, release_id)
        assert stored is not None and stored.visibility is Visibility.PUBLIC
    dashboard = await client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "Tide Tables" in await dashboard.get_data(as_text=True)
