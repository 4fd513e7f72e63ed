"""stars of albums and artists, saved play queues, now playing, when a playlist changed

Revision ID: e2b7c91d4f30
Revises: a7c3e5f1b9d2
Create Date: 2026-12-02 15:00:00.000000+00:00

What the Subsonic API's library keeps beyond favourites and playlists: albums and
artists a listener starred, the play queue an app saved, what apps say is playing, and
the moment a playlist last changed (apps sync a playlist again when it moves).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "e2b7c91d4f30"
down_revision: str | None = "a7c3e5f1b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
MOMENT = models.base.UTCDateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _star_table(name: str, column: str, target: str) -> None:
    op.create_table(
        name,
        sa.Column("user_id", ID, nullable=False),
        sa.Column(column, ID, nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.ForeignKeyConstraint(
            [column],
            [f"{target}.id"],
            name=op.f(f"fk_{name}_{column}_{target}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f(f"fk_{name}_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", column, name=op.f(f"pk_{name}")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f(f"ix_{name}_{column}"), name, [column], unique=False)


def upgrade() -> None:
    _star_table("album_stars", "release_id", "releases")
    _star_table("artist_stars", "artist_id", "artists")
    op.create_table(
        "play_queues",
        sa.Column("user_id", ID, nullable=False),
        sa.Column("track_ids", JSON, nullable=False),
        sa.Column("current_id", sa.BigInteger(), nullable=True),
        sa.Column("position_ms", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", MOMENT, nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_play_queues_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_play_queues")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "now_playing",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("player", sa.String(length=100), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("at", MOMENT, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_now_playing_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_now_playing")),
        sa.UniqueConstraint("user_id", "player", name="uq_now_playing_user_player"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("playlists") as batch:
        batch.add_column(sa.Column("changed_at", MOMENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("playlists") as batch:
        batch.drop_column("changed_at")
    op.drop_table("now_playing")
    op.drop_table("play_queues")
    op.drop_index(op.f("ix_artist_stars_artist_id"), table_name="artist_stars")
    op.drop_table("artist_stars")
    op.drop_index(op.f("ix_album_stars_release_id"), table_name="album_stars")
    op.drop_table("album_stars")
