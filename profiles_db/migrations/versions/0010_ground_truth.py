"""gt_segments, gt_scenes, gt_events: reviewers' corrected scripts, the database's ground truth

Revision ID: 0010_ground_truth
Revises: 0009_model_batches
Create Date: 2026-12-07 09:00:00

A review (`v2s review import`, from Label Studio) stores the corrected script of each reviewed segment: one
`gt_segments` row per segment (who reviewed it, when, where it came from, what was changed), its scenes and
their events as rows people can query. The newest review of a segment replaces the older one. `v2s eval --gt
OUT` scores a run against them. `merges.undone_reason` says who undid a merge and why (a reviewer's split).
New tables and a nullable column: no batch rebuild on SQLite, the views stay as 0006 made them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ground_truth"
down_revision: str | Sequence[str] | None = "0009_model_batches"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # who undid a merge and why (a reviewer's split); a nullable column: no batch rebuild on SQLite
    op.add_column("merges", sa.Column("undone_reason", sa.Text(), nullable=True))
    op.create_table(
        "gt_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=256), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["segment_id"], ["segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("segment_id"),
    )
    op.create_table(
        "gt_scenes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gt_segment_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("scene_id", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Text(), nullable=False) for name in _SCENE_TEXTS),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["gt_segment_id"], ["gt_segments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gt_segment_id", "position"),
    )
    op.create_table(
        "gt_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gt_scene_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("timestamp_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("character", sa.Text(), nullable=False),
        sa.Column("character_code", sa.String(length=32), nullable=True),
        *(sa.Column(name, sa.Text(), nullable=True) for name in _EVENT_TEXTS),
        sa.Column("voice_type", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["gt_scene_id"], ["gt_scenes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gt_scene_id", "position"),
    )


_SCENE_TEXTS = ("location", "type", "environment", "time", "mood")
_EVENT_TEXTS = ("dialogue", "action", "expression", "audio_cue", "subtext")


def downgrade() -> None:
    op.drop_table("gt_events")
    op.drop_table("gt_scenes")
    op.drop_table("gt_segments")
    op.drop_column("merges", "undone_reason")
