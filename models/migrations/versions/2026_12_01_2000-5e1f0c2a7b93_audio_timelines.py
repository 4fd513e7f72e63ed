"""audio timelines: which byte of a streaming file holds which moment

Revision ID: 5e1f0c2a7b93
Revises: 2cb402245e19
Create Date: 2026-12-01 20:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5e1f0c2a7b93"
down_revision: str | None = "2cb402245e19"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# dropping a column rebuilds the table on SQLite: keep its ids never reused
KEEP = {"sqlite_autoincrement": True}

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("media_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timeline", JSON, nullable=True))
    with op.batch_alter_table("remote_tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_timeline", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("remote_tracks", schema=None, table_kwargs=KEEP) as batch_op:
        batch_op.drop_column("cache_timeline")
    with op.batch_alter_table("media_files", schema=None, table_kwargs=KEEP) as batch_op:
        batch_op.drop_column("timeline")
