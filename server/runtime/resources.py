"""What a running process holds: settings, the database engine, the HTTP client, keys.

Made at start-up (the web app's ``before_serving``, the worker's start) and closed at the end;
nothing here is made at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from federation.fetch import FetchPolicy, GuardedClient
from federation.http import HttpClientOptions, create_http_client
from federation.keys import InstanceKeys, KeyCache, ensure_instance_keys
from models import migrate
from models.database import (
    DatabaseOptions,
    check_connection,
    create_engine,
    create_read_engine,
    create_sessionmaker,
    describe_url,
)
from server.runtime.clock import Clock, SystemClock
from server.runtime.config import Settings
from server.runtime.instance import read_secret


class DatabaseNotMigrated(Exception):
    """The database schema is not the one this code expects."""


@dataclass
class Resources:
    """``sessionmaker()`` opens a unit of work that writes (on SQLite: ``BEGIN IMMEDIATE``,
    the process's one writing connection); ``read_sessionmaker()`` one that only reads
    (never takes SQLite's write lock; a write in it fails). One at a time per task."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    read_engine: AsyncEngine
    read_sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    keys: InstanceKeys
    secret: str
    fetcher: GuardedClient
    key_cache: KeyCache
    clock: Clock = field(default_factory=SystemClock)

    async def close(self) -> None:
        await self.http.aclose()
        await self.read_engine.dispose()
        await self.engine.dispose()


def database_options(settings: Settings) -> DatabaseOptions:
    return DatabaseOptions(
        url=settings.database_url,
        pool_size=settings.database.pool_size,
        busy_timeout_seconds=settings.database.busy_timeout.total_seconds(),
        echo=settings.database.echo,
        on_nested=settings.database.nested_sessions,
    )


async def check_schema(settings: Settings) -> None:
    """Fail with a clear reason unless the database is reachable and fully migrated."""
    engine = create_engine(database_options(settings))
    try:
        await check_connection(engine)
    finally:
        await engine.dispose()
    current = await migrate.current_revision(settings.database_url)
    head = migrate.HEAD
    if current != head:
        raise DatabaseNotMigrated(
            f"database {describe_url(settings.database_url)} is at revision {current or 'none'}, "
            f"this code needs {head}: run `playfair migrate`"
        )


async def open_resources(settings: Settings) -> Resources:
    secret = read_secret(settings)
    options = database_options(settings)
    engine = create_engine(options)
    read_engine = create_read_engine(options, engine)
    http: httpx.AsyncClient | None = None
    try:
        await check_connection(engine)
        sessionmaker = create_sessionmaker(engine, on_nested=options.on_nested)
        read_sessionmaker = create_sessionmaker(read_engine, on_nested=options.on_nested)
        async with sessionmaker() as session:
            keys = await ensure_instance_keys(session, secret)
        http = create_http_client(
            HttpClientOptions(
                base_url=settings.instance.base_url,
                timeout_seconds=settings.federation.fetch_timeout.total_seconds(),
            )
        )
        policy = FetchPolicy(
            allow_private=settings.federation.allow_private_addresses,
            max_bytes=settings.federation.max_fetch_bytes,
            deadline_seconds=settings.federation.fetch_timeout.total_seconds() * 3,
        )
        fetcher = GuardedClient(http, policy)
        return Resources(
            settings, engine, sessionmaker, read_engine, read_sessionmaker,
            http, keys, secret, fetcher, KeyCache(),
        )  # fmt: skip
    except BaseException:
        if http is not None:
            await http.aclose()
        await read_engine.dispose()
        await engine.dispose()
        raise
