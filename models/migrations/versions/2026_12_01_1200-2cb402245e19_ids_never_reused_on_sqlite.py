"""ids never reused on SQLite (AUTOINCREMENT)

Revision ID: 2cb402245e19
Revises: 799ebc22e7ba
Create Date: 2026-12-01 12:00:00.000000+00:00

Without AUTOINCREMENT SQLite hands the id of a deleted newest row to the next row, and
ids are used as ledger keys (``wallet:{user_id}``, ``artist:{artist_id}``), idempotency
references (``starter:{user_id}``, ``voucher:{id}``, ``payout:{id}``), job keys and
public URIs. Every table with an integer id is rebuilt with AUTOINCREMENT (batch mode),
and the sequences of users and artists start above any id the ledger still names, so
that an id freed before this migration is not handed out either. PostgreSQL's
sequences never reuse ids: nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2cb402245e19"
down_revision: str | None = "799ebc22e7ba"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "access_tokens", "actor_blocks", "actor_keys", "artists", "audit_log", "deliveries",
    "domain_policies", "follows", "hub_log", "inbox_items", "instance_keys", "interactions",
    "invitations", "jobs", "labels", "ledger_accounts", "ledger_entries",
    "ledger_transactions", "media_files", "members", "oauth_clients", "oauth_codes",
    "oauth_refresh_tokens", "outbound_activities", "partnerships", "payouts",
    "play_sessions", "playlists", "plays", "rate_counters", "received_listens", "releases",
    "remote_actors", "remote_play_sessions", "remote_plays", "remote_posts", "remote_tracks",
    "reports", "royalty_statements", "search_documents", "settlements",
    "share_transactions", "tags", "tracks", "users", "vouchers", "web_sessions",
)  # fmt: skip

# Rebuilding search_documents drops its triggers, which keep the FTS5 index in step.
SEARCH_TRIGGERS = (
    "CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER search_documents_au AFTER UPDATE ON search_documents BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
)


# The highest id of each kind that a ledger account or transaction still names.
def _after(prefix: str, column: str) -> str:
    return f"CAST(substr({column}, {len(prefix) + 1}) AS INTEGER)"


def _second(prefix: str) -> str:  # "buy:{user_id}:{track_id}" -> track_id
    rest = f"substr(reference, {len(prefix) + 1})"
    return f"CAST(substr({rest}, instr({rest}, ':') + 1) AS INTEGER)"


def _named(table: str, column: str, prefix: str, value: str) -> str:
    # built from the constants below only
    return f"SELECT max({value}) FROM {table} WHERE {column} LIKE '{prefix}%'"  # noqa: S608


LEDGER_NAMED = {
    "users": (
        _named("ledger_accounts", "key", "wallet:", _after("wallet:", "key")),
        _named("ledger_transactions", "reference", "starter:", _after("starter:", "reference")),
    ),
    "artists": (_named("ledger_accounts", "key", "artist:", _after("artist:", "key")),),
    "remote_actors": (_named("ledger_accounts", "key", "peer:", _after("peer:", "key")),),
    "vouchers": (
        _named("ledger_transactions", "reference", "voucher:", _after("voucher:", "reference")),
    ),
    "payouts": (
        _named("ledger_transactions", "reference", "payout:", _after("payout:", "reference")),
    ),
    "tracks": (_named("ledger_transactions", "reference", "buy:", _second("buy:")),),
    "remote_tracks": (
        _named("ledger_transactions", "reference", "remote-buy:", _second("remote-buy:")),
    ),
}


def _rebuild(autoincrement: bool) -> None:
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
    for trigger in SEARCH_TRIGGERS:
        op.execute(trigger)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild(autoincrement=True)
    bind = op.get_bind()
    for table, queries in LEDGER_NAMED.items():
        named = [bind.exec_driver_sql(query).scalar() for query in queries]
        highest = max([int(value) for value in named if value is not None], default=0)
        current = bind.exec_driver_sql(
            "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
        ).scalar()
        if highest > (current or 0):
            bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
            bind.exec_driver_sql(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, highest)
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild(autoincrement=False)
