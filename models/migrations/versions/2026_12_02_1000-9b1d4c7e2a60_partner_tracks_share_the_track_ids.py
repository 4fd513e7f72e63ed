"""partners' tracks share the tracks' id space

Revision ID: 9b1d4c7e2a60
Revises: 273c42ab2c42
Create Date: 2026-12-02 10:00:00.000000+00:00

A track id names one track here, ours or a partner's (``/api/v1/tracks/{id}``): a
partner's track takes its id from the tracks' own sequence (SQLite: the ``tracks`` entry
of ``sqlite_sequence``). That sequence first moves past every id a partner's track ever
had (ledger references name them: ``remote-buy:{user}:{id}``), then each partner's track
known here gets a new id from it, and its counts, sessions and plays follow it. An old id
is never handed out to a partner's track again; the old partner routes answer 404 for it.
The downgrade keeps the new ids.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b1d4c7e2a60"
down_revision: str | None = "273c42ab2c42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = ("remote_listener_tracks", "remote_play_sessions", "remote_plays")


def _sqlite_seq(bind: sa.Connection, table: str) -> int:
    value = bind.exec_driver_sql(
        "SELECT max(seq) FROM sqlite_sequence WHERE name = ?", (table,)
    ).scalar()
    return int(value or 0)


def _pg_last(bind: sa.Connection, table: str) -> int:
    name = bind.exec_driver_sql(f"SELECT pg_get_serial_sequence('{table}', 'id')").scalar()
    query = f"SELECT last_value, is_called FROM {name}"  # noqa: S608 (the catalogue's name)
    last, called = bind.exec_driver_sql(query).one()
    return int(last) if called else 0


def _highest(bind: sa.Connection, table: str) -> int:
    query = f"SELECT coalesce(max(id), 0) FROM {table}"  # noqa: S608 (our table names)
    return int(bind.exec_driver_sql(query).scalar() or 0)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    last = _sqlite_seq if sqlite else _pg_last
    past = max(
        last(bind, "tracks"),
        last(bind, "remote_tracks"),
        _highest(bind, "tracks"),
        _highest(bind, "remote_tracks"),
    )
    if sqlite:
        bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = 'tracks'")
        bind.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('tracks', ?)", (past,)
        )
    elif past:
        bind.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('tracks', 'id'), {past})")

    columns = [
        column["name"]
        for column in sa.inspect(bind).get_columns("remote_tracks")
        if column["name"] not in ("id", "uri")
    ]
    listed = ", ".join(columns)
    rows = bind.exec_driver_sql("SELECT id, uri FROM remote_tracks ORDER BY id").all()
    for old, uri in rows:
        if sqlite:
            bind.exec_driver_sql("UPDATE sqlite_sequence SET seq = seq + 1 WHERE name = 'tracks'")
            new = _sqlite_seq(bind, "tracks")
        else:
            new = bind.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('tracks', 'id'))"
            ).scalar()
        # the uri is unique: the old row lets go of it before the new one takes it
        bind.execute(
            sa.text("UPDATE remote_tracks SET uri = :held WHERE id = :old"),
            {"held": f"urn:playfair:renumbered:{old}", "old": old},
        )
        bind.execute(
            sa.text(
                f"INSERT INTO remote_tracks (id, uri, {listed}) "  # noqa: S608 (names from the table)
                f"SELECT :new, :uri, {listed} FROM remote_tracks WHERE id = :old"
            ),
            {"new": new, "uri": uri, "old": old},
        )
        for child in CHILDREN:
            moving = f"UPDATE {child} SET remote_track_id = :new WHERE remote_track_id = :old"  # noqa: S608
            bind.execute(sa.text(moving), {"new": new, "old": old})
        bind.execute(sa.text("DELETE FROM remote_tracks WHERE id = :old"), {"old": old})


def downgrade() -> None:
    pass
