"""crash safety: a lease on deliveries in flight, one unanswered statement per payee

Revision ID: 273c42ab2c42
Revises: 42daac31a1f5
Create Date: 2026-12-01 12:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "273c42ab2c42"
down_revision: str | None = "42daac31a1f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# dropping a column rebuilds the table on SQLite: keep its ids never reused
KEEP = {"sqlite_autoincrement": True}

UNANSWERED = "direction = 'outgoing' AND state = 'sent'"


def upgrade() -> None:
    # Rows left `delivering` by a crash before this revision have no lease: NULL counts
    # as run out, so they are taken over.
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("leased_until", models.base.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_royalty_statements_one_unanswered",
        "royalty_statements",
        ["counterpart_id"],
        unique=True,
        sqlite_where=sa.text(UNANSWERED),
        postgresql_where=sa.text(UNANSWERED),
    )


def downgrade() -> None:
    op.drop_index("ix_royalty_statements_one_unanswered", table_name="royalty_statements")
    with op.batch_alter_table("deliveries", schema=None, table_kwargs=KEEP) as batch_op:
        batch_op.drop_column("leased_until")
