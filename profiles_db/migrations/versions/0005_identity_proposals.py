"""identity proposals: the model's same-person proposals, merged, pending review or rejected

Revision ID: 0005_identity_proposals
Revises: 0004_output_integrity
Create Date: 2026-12-02 05:00:00

A new table only (no batch op), so the views of 0002 stay untouched on SQLite.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_identity_proposals"
down_revision: str | Sequence[str] | None = "0004_output_integrity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_proposals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=512), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("from_id", sa.Integer(), nullable=False),
        sa.Column("into_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.String(length=8), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("merge_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["from_id"], ["characters.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["into_id"], ["characters.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["merge_id"], ["merges.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_identity_proposals_scope", "identity_proposals", ["scope"])
    op.create_index("ix_identity_proposals_from_id", "identity_proposals", ["from_id"])
    op.create_index("ix_identity_proposals_into_id", "identity_proposals", ["into_id"])


def downgrade() -> None:
    op.drop_table("identity_proposals")
