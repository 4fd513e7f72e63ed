"""Alembic environment: async engines, batch mode on SQLite, and connection sharing.

Callers that already hold a connection (``models.migrate``) pass it in
``config.attributes["connection"]``; otherwise the URL is ``config.attributes["url"]``, or
for the bare `alembic` command line ``-x url=…`` or the ini's ``sqlalchemy.url``
(`playfair migrate` reads it from the instance's settings instead).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import models

config = context.config
target_metadata = models.load_all()


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The full-text indexes (SQLite's FTS5 table with its shadow tables, PostgreSQL's
    # expression index) are made by hand in a migration and are not part of the models.
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith("search_fts")
    if type_ == "column":
        return name != "search_vector"
    return not (type_ == "index" and name == "ix_search_documents_vector")


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = (
        config.attributes.get("url")
        or context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("no database URL: run `playfair migrate`, or `alembic -x url=…`")
    return str(url)


async def _run_async() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _configure(shared)
else:
    asyncio.run(_run_async())
