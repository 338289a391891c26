"""model_batches, and stage_runs.batch_name: the provider batch a stage's request waits in

Revision ID: 0009_model_batches
Revises: 0008_stage_tiers
Create Date: 2026-12-06 09:00:00

A stage at the batch tier sends its request inside a provider batch job (Gemini `batches`, OpenAI `/v1/batches`)
instead of a call of its own. The batch's name is written here before the run waits for it, so a run killed
while batches are open polls the batches it already paid for when it is resumed instead of submitting again;
`v2s status` lists the open ones with what they are expected to cost. `stage_runs.batch_name` says which batch
holds a stage's request (NULL once its answer is stored or it is sent again). Added columns and a new table: no
batch rebuild on SQLite, the views stay as 0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_model_batches"
down_revision: str | Sequence[str] | None = "0008_stage_tiers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_batches",
        sa.Column("name", sa.String(length=256), primary_key=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed_items", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("keys", sa.JSON(), nullable=True),
        sa.Column("estimated_cost_usd", sa.Float(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_model_batches_job_state", "model_batches", ["job_id", "state"])
    op.add_column("stage_runs", sa.Column("batch_name", sa.String(length=256), nullable=True))


def downgrade() -> None:
    op.drop_column("stage_runs", "batch_name")
    op.drop_index("ix_model_batches_job_state", table_name="model_batches")
    op.drop_table("model_batches")
