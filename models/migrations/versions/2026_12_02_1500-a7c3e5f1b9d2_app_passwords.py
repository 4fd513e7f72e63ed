"""app passwords

Revision ID: a7c3e5f1b9d2
Revises: c4a7e19d3b52
Create Date: 2026-12-02 15:00:00+00:00

The passwords listeners give their Subsonic apps (models.app_passwords): sealed with the
instance secret, one row per app, gone with the account.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "a7c3e5f1b9d2"
down_revision: str | None = "c4a7e19d3b52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOMENT = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "app_passwords",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("last_used_at", MOMENT, nullable=True),
        sa.Column("revoked_at", MOMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_app_passwords_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_passwords")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_app_passwords_user_id"), "app_passwords", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_app_passwords_user_id"), table_name="app_passwords")
    op.drop_table("app_passwords")
