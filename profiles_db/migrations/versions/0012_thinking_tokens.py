"""stage_runs.thinking_tokens: how much of a stage's output was the model's thinking

Revision ID: 0012_thinking_tokens
Revises: 0011_superseded_versions
Create Date: 2026-12-08 10:00:00

Of `output_tokens`, the thinking the provider reported (Gemini `thoughtsTokenCount`, OpenAI
`completion_tokens_details.reasoning_tokens`), summed over the stage's calls. `v2s plan` prices thinking from
it. Nullable on purpose: rows written before this revision did not record it (NULL), which the plan tells apart
from a stage that reported no thinking (0). One added column: no batch rebuild on SQLite, the views stay as
0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_thinking_tokens"
down_revision: str | Sequence[str] | None = "0011_superseded_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stage_runs", sa.Column("thinking_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("stage_runs", "thinking_tokens")
