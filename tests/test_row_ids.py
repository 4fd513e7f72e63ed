"""Row ids are never reused, on SQLite as on PostgreSQL: ids become ledger keys
(``wallet:{user_id}``), idempotency references (``starter:{user_id}``) and public URIs,
so a new row must never get the id of a deleted one."""

from __future__ import annotations

from pathlib import Path

from quart import Quart
from quart.typing import TestClientProtocol as Client
from sqlalchemy import Integer, create_engine, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from models import ledger, migrate
from models.base import Base
from models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from models.users import User
from server.web.current import resources_of
from tests.test_account_pages import PASSWORD, csrf, sign_up


def integer_id_tables() -> list[str]:
    """Tables that hand out integer ids (a key that is another table's id, as a play
    queue's user, hands out none)."""
    return sorted(
        table.name
        for table in Base.metadata.tables.values()
        if len(table.primary_key.columns) == 1
        and isinstance(next(iter(table.primary_key.columns)).type, Integer)
        and not next(iter(table.primary_key.columns)).foreign_keys
    )


async def test_sign_up_after_the_newest_account_is_deleted(app: Quart, client: Client) -> None:
    starter = resources_of(app).settings.money.starter_balance
    assert starter > 0
    assert (await sign_up(client, "ana")).status_code == 303
    async with resources_of(app).read_sessionmaker() as session:
        ana = await session.scalar(select(User.id).where(User.username == "ana"))
    assert ana is not None
    deleted = await client.post(
        "/settings/delete",
        form={"csrf_token": await csrf(client, "/settings"), "password": PASSWORD},
    )
    assert deleted.status_code == 303, await deleted.get_data(as_text=True)

    other = app.test_client()
    answer = await sign_up(other, "ben")
    assert answer.status_code == 303, await answer.get_data(as_text=True)
    async with resources_of(app).read_sessionmaker() as session:
        ben = await session.scalar(select(User.id).where(User.username == "ben"))
        assert ben is not None and ben > ana
        # ben's wallet holds his own starter grant only, nothing of ana's
        assert await ledger.balance(session, ledger.wallet_key(ben)) == starter
        entries = await session.scalars(
            select(LedgerTransaction.reference)
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(LedgerAccount.key == ledger.wallet_key(ben))
        )
        assert list(entries) == [f"starter:{ben}"]
        assert await session.scalar(select(func.sum(LedgerEntry.amount))) == 0
    wallet = await other.get("/wallet")
    assert wallet.status_code == 200


def test_every_integer_id_autoincrements_on_sqlite(sqlite_template: Path) -> None:
    """In the models and in a migrated database: a table added without AUTOINCREMENT on
    SQLite fails here."""
    tables = integer_id_tables()
    assert {"users", "artists", "tracks", "releases", "vouchers", "payouts"} <= set(tables)
    for name in tables:
        ddl = str(CreateTable(Base.metadata.tables[name]).compile(dialect=sqlite.dialect()))
        assert "PRIMARY KEY AUTOINCREMENT" in ddl, name
    engine = create_engine(f"sqlite:///{sqlite_template}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type='table'")
            )
            stored = {name: sql for name, sql in rows}
    finally:
        engine.dispose()
    for name in tables:
        assert "PRIMARY KEY AUTOINCREMENT" in stored[name], name


async def test_the_migration_keeps_rows_and_skips_ids_the_ledger_names(tmp_path: Path) -> None:
    """An instance from before: user 3 was deleted (its wallet stays in the ledger), the
    newest left is 2. After the migration the rows are all there, search still finds,
    and the next account is 4, not 3."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await migrate.upgrade(url, "799ebc22e7ba")
    engine = create_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    user_row = (
        "INSERT INTO handles (name, kind) VALUES ('{name}', 'user');"
        "INSERT INTO users (id, username, password_hash, role, created_at, status) "
        "VALUES ({id}, '{name}', 'x', 'listener', '2026-01-01', 'active')"
    )
    try:
        with engine.begin() as connection:
            for user_id, name in ((1, "ana"), (2, "ben")):
                for statement in user_row.format(id=user_id, name=name).split(";"):
                    connection.execute(text(statement))
            connection.execute(
                text(
                    'INSERT INTO ledger_accounts ("key", kind, owner_id, balance, gross, '
                    "created_at) VALUES ('wallet:3', 'wallet', NULL, 0, 0, '2026-01-01')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO search_documents (kind, object_id, title, body) "
                    "VALUES ('artist', 7, 'Aurora Lane', 'aurora')"
                )
            )
        await migrate.upgrade(url)
        with engine.begin() as connection:
            names = connection.execute(text("SELECT id, username FROM users ORDER BY id")).all()
            assert [tuple(row) for row in names] == [(1, "ana"), (2, "ben")]
            for statement in user_row.format(id="NULL", name="cleo").split(";"):
                connection.execute(text(statement))
            cleo = connection.execute(text("SELECT id FROM users WHERE username = 'cleo'"))
            assert cleo.scalar() == 4
            found = connection.execute(
                text("SELECT rowid FROM search_fts WHERE search_fts MATCH 'aurora'")
            ).all()
            assert len(found) == 1
            connection.execute(text("DELETE FROM search_documents"))
            left = connection.execute(
                text("SELECT rowid FROM search_fts WHERE search_fts MATCH 'aurora'")
            ).all()
            assert left == []  # the triggers came back with the table
    finally:
        engine.dispose()
