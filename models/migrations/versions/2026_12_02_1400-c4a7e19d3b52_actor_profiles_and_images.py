"""actor profiles and images

Revision ID: c4a7e19d3b52
Revises: c5a8e1f3d9b2
Create Date: 2026-12-02 14:00:00.000000+00:00

Avatars and headers of local actors (each version a row, the newest ready one shown),
and the profile choices: discoverable, indexable, links, aliases and a move.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "c4a7e19d3b52"
down_revision: str | None = "c5a8e1f3d9b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
MOMENT = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "actor_images",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=30), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=True),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("ready_at", MOMENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actor_images")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_actor_images_storage_key")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_actor_images_actor_role", "actor_images", ["actor", "role", "state"], unique=False
    )
    op.create_table(
        "actor_profiles",
        sa.Column("actor", sa.String(length=30), nullable=False),
        sa.Column("discoverable", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("indexable", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("links", JSON, nullable=False),
        sa.Column("also_known_as", JSON, nullable=False),
        sa.Column("moved_to", sa.String(length=2048), nullable=True),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("actor", name=op.f("pk_actor_profiles")),
    )


def downgrade() -> None:
    op.drop_table("actor_profiles")
    op.drop_index("ix_actor_images_actor_role", table_name="actor_images")
    op.drop_table("actor_images")
