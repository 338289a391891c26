"""output integrity: the shards each output holds (with every record's bytes) and one live run per output

Revision ID: 0004_output_integrity
Revises: 0003_response_cache
Create Date: 2026-12-02 02:00:00

New tables only (no batch op), so the views of 0002 stay untouched on SQLite.
- `shards`: every closed shard of an output with its record count, size and sha256, written in the same
  transaction that marks its records exported. The manifest is rendered from these rows, and a run verifies
  the files against them before it writes or skips anything.
- `shard_records`: the exact bytes of every exported line (zlib), so a damaged or deleted shard is rebuilt
  byte for byte without a model call.
- `output_locks`: the one run that may write an output, with a heartbeat; a second run is refused.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_output_integrity"
down_revision: str | Sequence[str] | None = "0003_response_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shards",
        sa.Column("out", sa.String(length=1024), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("out", "name"),
    )
    op.create_table(
        "shard_records",
        sa.Column("out", sa.String(length=1024), nullable=False),
        sa.Column("shard", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("out", "shard", "line"),
    )
    op.create_index("ix_shard_records_segment", "shard_records", ["segment_id"])
    op.create_table(
        "output_locks",
        sa.Column("out", sa.String(length=1024), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("out"),
    )


def downgrade() -> None:
    op.drop_table("output_locks")
    op.drop_index("ix_shard_records_segment", table_name="shard_records")
    op.drop_table("shard_records")
    op.drop_table("shards")
