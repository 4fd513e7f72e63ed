"""refresh token families

Revision ID: 42daac31a1f5
Revises: 5e1f0c2a7b93
Create Date: 2026-12-01 12:00:00+00:00

Each refresh token belongs to the family of the authorization it descends from, so that
a rotated token presented again revokes them all. Tokens issued before this revision
each start a family of their own (their digest is unique).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "42daac31a1f5"
down_revision: str | None = "5e1f0c2a7b93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEEP = {"sqlite_autoincrement": True}


def upgrade() -> None:
    with op.batch_alter_table("oauth_refresh_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("family", sa.String(length=64), nullable=True))
    op.execute("UPDATE oauth_refresh_tokens SET family = digest")
    # altering a column rebuilds the table on SQLite: keep its ids never reused
    with op.batch_alter_table("oauth_refresh_tokens", schema=None, table_kwargs=KEEP) as batch_op:
        batch_op.alter_column("family", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_oauth_refresh_tokens_family"), ["family"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_refresh_tokens", schema=None, table_kwargs=KEEP) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_refresh_tokens_family"))
        batch_op.drop_column("family")
