"""jobs.skipped_inputs: the entries of a job's source that were left out, and why

Revision ID: 0007_skipped_inputs
Revises: 0006_views_json
Create Date: 2026-12-05 08:00:00

A nullable JSON column (a list of `{uri, reason}`), so `v2s status` can say which files were not processed
(a dangling symlink, an unsupported suffix, a second path to a file or a copy of one) long after the run's log
is gone. Adding a column needs no batch rebuild on SQLite, so the views stay as 0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_skipped_inputs"
down_revision: str | Sequence[str] | None = "0006_views_json"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("skipped_inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    # SQLite 3.35+ drops a column that no view or index names (none does)
    op.drop_column("jobs", "skipped_inputs")
