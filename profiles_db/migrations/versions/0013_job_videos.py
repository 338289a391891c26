"""job_videos: which jobs a video belongs to (a video may be in the sources of several jobs)

Revision ID: 0013_job_videos
Revises: 0012_thinking_tokens
Create Date: 2026-12-08 12:00:00

Until now a video had one job (`videos.job_id`, the last job that listed it), so a second job whose source
shares a video (an episode of a series two manifests name, the same film in two buckets' listings) took it from
the first: the first job's status, progress and outcome lost it. Each job that lists a video now gets a row here;
`videos.job_id` stays as the job that listed it last. Filled from `videos.job_id` for the rows already there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_job_videos"
down_revision: str | Sequence[str] | None = "0012_thinking_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_videos",
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "video_id", sa.String(64), sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True
        ),
    )
    op.create_index("ix_job_videos_video_id", "job_videos", ["video_id"])
    op.execute(
        "INSERT INTO job_videos (job_id, video_id) SELECT job_id, id FROM videos WHERE job_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_job_videos_video_id", table_name="job_videos")
    op.drop_table("job_videos")
