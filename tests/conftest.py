"""Fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL, settings
pointing at it, and a running app (``before_serving`` done) with a test client.

Every test that asks for ``database_url`` (directly or through ``settings``, ``app``,
``resources``) runs twice: once on a SQLite file, once on PostgreSQL. Set
``PLAYFAIR_TEST_DATABASES=sqlite`` to run only the SQLite half on a machine without
PostgreSQL; CI runs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from quart import Quart
from quart.typing import TestClientProtocol as Client

from models import migrate
from server.runtime.config import Settings, load_settings
from server.runtime.resources import Resources, open_resources
from server.web.app import create_app
from tests.postgres import PostgresServer, running_postgres

TEST_SECRET = "test-secret-" + "x" * 40
DATABASES = [
    name for name in os.environ.get("PLAYFAIR_TEST_DATABASES", "sqlite,postgres").split(",") if name
]
_counter = itertools.count()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_kind" in metafunc.fixturenames:
        kinds = DATABASES
        if metafunc.definition.get_closest_marker("mixed_databases"):
            # several instances in one test, the others on SQLite files: one run with
            # this one on the last test database (PostgreSQL in CI) covers both
            kinds = DATABASES[-1:]
        metafunc.parametrize("database_kind", kinds, scope="session")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        asyncio.run(_make_template(server))
        yield server


async def _make_template(server: PostgresServer) -> None:
    connection = await asyncpg.connect(
        host=server.host, port=server.port, user=server.user, database="postgres"
    )
    try:
        await connection.execute("CREATE DATABASE playfair_template")
    finally:
        await connection.close()
    await migrate.upgrade(server.url("playfair_template"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@contextlib.contextmanager
def fresh_database(
    database_kind: str, request: pytest.FixtureRequest, folder: Path
) -> Iterator[str]:
    """A fresh database at the head revision, copied from a migrated template; for
    fixtures of any scope (a module can share one running instance)."""
    if database_kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = folder / "playfair.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}" TEMPLATE playfair_template'))
    try:
        yield server.url(name)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(
    database_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh database at the head revision, copied from a migrated template."""
    with fresh_database(database_kind, request, tmp_path) as url:
        yield url


@pytest.fixture
def empty_database_url(
    database_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database with no tables at all, for migration tests."""
    if database_kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"empty_{os.getpid()}_{next(_counter)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    yield server.url(name)
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(server: PostgresServer, statement: str) -> None:
    connection = await asyncpg.connect(
        host=server.host, port=server.port, user=server.user, database="postgres"
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def make_settings(tmp_path: Path, database_url: str, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "instance": {"data_dir": str(tmp_path / "data"), "secret": TEST_SECRET},
        # A nested session is a bug the whole suite must catch, not log.
        "database": {"url": database_url, "nested_sessions": "raise"},
        "server": {"access_log": False},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_settings(None, environ={}, overrides=overrides)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Quart]:
    application = create_app(settings)
    async with application.test_app() as test_app:
        yield test_app.app  # type: ignore[attr-defined]


@pytest.fixture
def client(app: Quart) -> Client:
    return app.test_client()


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    opened = await open_resources(settings)
    try:
        yield opened
    finally:
        await opened.close()
