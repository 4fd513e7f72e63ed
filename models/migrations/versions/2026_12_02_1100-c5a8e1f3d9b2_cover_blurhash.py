"""a cover's BlurHash

Revision ID: c5a8e1f3d9b2
Revises: 9b1d4c7e2a60
Create Date: 2026-12-02 11:00:00.000000+00:00

A release post's audio attachment carries the cover's BlurHash (Mastodon shows it while
the poster loads); it is computed once, when the cover is stored or by the sampler job,
and kept beside the file. The release sampler itself is a new ``media_files.role`` value
(``sampler``), which needs no change: roles are plain strings.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c5a8e1f3d9b2"
down_revision: str | None = "9b1d4c7e2a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("media_files") as batch:
        batch.add_column(sa.Column("blurhash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_files") as batch:
        batch.drop_column("blurhash")
