"""More requests than the database keeps up with: when every connection of the pool stays
taken for the pool timeout, a request is answered 503 with Retry-After and logged as a
warning with its request id, not as an unhandled error (found by the hang-up storm of
tests/test_sqlite_locking.py on a loaded machine)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.runtime.config import Settings
from server.web.app import create_app
from server.web.current import resources_of
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # a pool of one connection (two on PostgreSQL, with its overflow) that gives up fast
    return make_settings(tmp_path, database_url, database={"pool_size": 1, "busy_timeout": "0.2s"})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    application = create_app(settings)
    async with application.test_app() as test_app:
        yield test_app.app  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def every_connection_taken(engine: AsyncEngine) -> AsyncIterator[None]:
    pool = engine.pool
    room = pool.size() + max(getattr(pool, "_max_overflow", 0), 0)  # type: ignore[attr-defined]
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(room):
            connection = await stack.enter_async_context(engine.connect())
            await connection.execute(text("SELECT 1"))
        yield


async def test_a_request_that_finds_no_free_connection_is_told_to_come_back(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    client = app.test_client()
    assert (await client.get("/api/v1/releases")).status_code == 200
    resources = resources_of(app)
    with caplog.at_level(logging.WARNING, logger="playfair.errors"):
        async with every_connection_taken(resources.read_engine):
            busy = await client.get("/api/v1/releases", headers={"X-Request-Id": "storm42"})
            page = await client.get("/search?q=harbour")
    assert busy.status_code == 503
    assert busy.headers["Retry-After"] == "5"
    assert (await busy.get_json())["status"] == 503
    assert page.status_code == 503 and "busy" in (await page.get_data(as_text=True))
    warnings = [r for r in caplog.records if r.name == "playfair.errors"]
    assert any("storm42" in r.getMessage() and "503" in r.getMessage() for r in warnings)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    # once a connection is free again, the same request is answered
    assert (await client.get("/api/v1/releases")).status_code == 200


async def test_other_database_errors_are_still_bugs(
    app: Quart, caplog: pytest.LogCaptureFixture
) -> None:
    """The 503 is for the pool timeout only; any other database error stays a logged 500."""
    resources = resources_of(app)
    original = resources.read_sessionmaker

    def broken() -> object:
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    resources.read_sessionmaker = broken  # type: ignore[assignment]
    try:
        with caplog.at_level(logging.ERROR, logger="playfair.errors"):
            answer = await app.test_client().get("/api/v1/releases")
    finally:
        resources.read_sessionmaker = original
    assert answer.status_code == 500
    assert any(r.exc_info for r in caplog.records if r.name == "playfair.errors")
