"""videos.superseded_by/_at and change_note, superseded_records: a changed source is a new version

Revision ID: 0011_superseded_versions
Revises: 0010_ground_truth
Create Date: 2026-12-07 17:00:00

A source re-encoded or replaced under the same name gets a new video id (the id hashes path, size and mtime, or
a bucket object's version). The old version is now marked superseded (by which video, when, what changed)
instead of lingering with open stages, and its exported records leave the output's shards and manifest; their
exact lines are kept in `superseded_records`. Nullable columns and a new table: no batch rebuild on SQLite, the
views stay as 0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_superseded_versions"
down_revision: str | Sequence[str] | None = "0010_ground_truth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("superseded_by", sa.String(length=64), nullable=True))
    op.add_column("videos", sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("videos", sa.Column("change_note", sa.Text(), nullable=True))
    op.create_table(
        "superseded_records",
        sa.Column("out", sa.String(length=1024), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("out", "record_id"),
    )


def downgrade() -> None:
    op.drop_table("superseded_records")
    # SQLite 3.35+ drops a column that no view or index names (none of these is)
    op.drop_column("videos", "change_note")
    op.drop_column("videos", "superseded_at")
    op.drop_column("videos", "superseded_by")
