"""The memory order of a scope: one rule, read by the CPM (which applies plots in it) and by the stage store
(which runs the plot chain in it)."""

from __future__ import annotations

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from profiles_db.models import Segment, Video


def scope_positions(session: Session, scope: str) -> dict[int, int]:
    """segment id → 1-based position in the scope: episode (NULL first), video creation, video id, idx."""
    query = (
        select(Segment.id)
        .join(Video, Video.id == Segment.video_id)
        .where(Video.scope == scope, Video.superseded_by.is_(None))  # an old version is in no chain
        .order_by(
            case((Video.episode.is_(None), 0), else_=1),
            Video.episode,
            Video.created_at,
            Video.id,
            Segment.idx,
        )
    )
    return {sid: pos for pos, sid in enumerate(session.scalars(query), start=1)}
