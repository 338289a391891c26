"""stage_runs.tier and stage_runs.cached_tokens: what a stage was billed at

Revision ID: 0008_stage_tiers
Revises: 0007_skipped_inputs
Create Date: 2026-12-05 10:00:00

`tier` is the service tier the stage's last call was served at (standard, flex; NULL for rows written before
this revision, which were all standard), `cached_tokens` how many of its input tokens came from a context
cache (billed at the cached price). `v2s status` sums cost per tier from them. Two added columns: no batch
rebuild on SQLite, the views stay as 0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_stage_tiers"
down_revision: str | Sequence[str] | None = "0007_skipped_inputs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stage_runs", sa.Column("tier", sa.String(length=16), nullable=True))
    op.add_column("stage_runs", sa.Column("cached_tokens", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("stage_runs", "cached_tokens")
    op.drop_column("stage_runs", "tier")
