"""Ground truth from review: reviewers' corrected scripts, stored per segment (tables gt_*, docs/sql.md).

`store` writes corrected segments (the newest review of a segment replaces an older one; an older review than
the one stored is skipped and reported), `load` reads them back with their segment's place in its video. The
pydantic models here are the boundary: the review importer builds them, the evaluation side reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from profiles_db.db import Database
from profiles_db.models import GtEvent, GtScene, GtSegment, Segment, Video, utcnow

SCENE_TEXTS = ("location", "type", "environment", "time", "mood")
EVENT_TEXTS = ("dialogue", "action", "expression", "audio_cue", "subtext")


class GtEventIn(BaseModel):
    region_id: str
    timestamp_s: float
    end_s: float | None = None
    character: str = ""
    character_code: str | None = None
    dialogue: str | None = None
    action: str | None = None
    expression: str | None = None
    audio_cue: str | None = None
    subtext: str | None = None
    voice_type: str | None = None


class GtSceneIn(BaseModel):
    region_id: str
    scene_id: int
    location: str = ""
    type: str = ""
    environment: str = ""
    time: str = ""
    mood: str = ""
    start_s: float | None = None
    end_s: float | None = None
    events: list[GtEventIn] = Field(default_factory=list)


class Change(BaseModel):
    region: str
    field: str
    old: str | float | None = None
    new: str | float | None = None


class GtSegmentIn(BaseModel):
    """One reviewed segment: which one (video id and 1-based index), who, when, from where, and the script."""

    video_id: str
    segment_index: int
    record_id: str
    reviewer: str
    reviewed_at: datetime
    source: str = "labelstudio"
    source_ref: str = ""
    changes: list[Change] = Field(default_factory=list)
    scenes: list[GtSceneIn] = Field(default_factory=list)


class StoredGt(GtSegmentIn):
    """A stored segment with the facts of its segment row (absolute bounds, its video's URI and scope)."""

    start_s: float
    end_s: float
    uri: str
    scope: str
    imported_at: datetime


class StoreReport(BaseModel):
    stored: list[str] = Field(default_factory=list)  # "VIDEO#INDEX"
    skipped: list[str] = Field(default_factory=list)  # with the reason


def store(db: Database, segments: list[GtSegmentIn]) -> StoreReport:
    """Write each corrected segment in one transaction; an unknown segment fails the whole import (naming it)."""
    report = StoreReport()
    with db.transaction() as s:
        for seg in segments:
            label = f"{seg.video_id}#{seg.segment_index}"
            segment_id = _segment_id(s, seg)
            old = s.scalars(select(GtSegment).where(GtSegment.segment_id == segment_id)).first()
            if old is not None and _aware(old.reviewed_at) > _aware(seg.reviewed_at):
                report.skipped.append(f"{label}: a newer review ({old.reviewed_at.isoformat()}) is stored")
                continue
            if old is not None:
                s.delete(old)
                s.flush()  # the unique segment_id must be free before the new row goes in
            s.add(_row(segment_id, seg))
            report.stored.append(label)
    return report


def _segment_id(s: Session, seg: GtSegmentIn) -> int:
    found = s.scalars(
        select(Segment.id).where(Segment.video_id == seg.video_id, Segment.idx == seg.segment_index)
    ).first()
    if found is None:
        raise ValueError(
            f"unknown segment {seg.segment_index} of video {seg.video_id} (record {seg.record_id}): "
            "is the database the one of the run that was reviewed?"
        )
    return found


def _row(segment_id: int, seg: GtSegmentIn) -> GtSegment:
    row = GtSegment(
        segment_id=segment_id,
        record_id=seg.record_id,
        reviewer=seg.reviewer,
        reviewed_at=seg.reviewed_at,
        imported_at=utcnow(),
        source=seg.source,
        source_ref=seg.source_ref,
        changes=[c.model_dump(mode="json") for c in seg.changes],
    )
    for n, scene in enumerate(seg.scenes, start=1):
        scene_row = GtScene(position=n, **scene.model_dump(exclude={"events"}))
        scene_row.events = [GtEvent(position=k, **e.model_dump()) for k, e in enumerate(scene.events, 1)]
        row.scenes.append(scene_row)
    return row


def load(db: Database, video_ids: set[str] | None = None) -> list[StoredGt]:
    """Every stored corrected segment (of `video_ids` only, when given), by video and segment index."""
    query = (
        select(GtSegment, Segment, Video)
        .join(Segment, Segment.id == GtSegment.segment_id)
        .join(Video, Video.id == Segment.video_id)
        .options(selectinload(GtSegment.scenes).selectinload(GtScene.events))
        .order_by(Video.id, Segment.idx)
    )
    if video_ids is not None:
        query = query.where(Video.id.in_(sorted(video_ids)))
    with db.sessions() as s:
        return [_stored(gt, seg, video) for gt, seg, video in s.execute(query)]


def _stored(gt: GtSegment, seg: Segment, video: Video) -> StoredGt:
    scenes = [
        GtSceneIn(
            region_id=sc.region_id,
            scene_id=sc.scene_id,
            start_s=sc.start_s,
            end_s=sc.end_s,
            events=[
                GtEventIn.model_validate(e, from_attributes=True)
                for e in sorted(sc.events, key=lambda e: e.position)
            ],
            **{name: getattr(sc, name) for name in SCENE_TEXTS},
        )
        for sc in sorted(gt.scenes, key=lambda sc: sc.position)
    ]
    return StoredGt(
        video_id=video.id,
        segment_index=seg.idx,
        record_id=gt.record_id,
        reviewer=gt.reviewer,
        reviewed_at=_aware(gt.reviewed_at),
        imported_at=_aware(gt.imported_at),
        source=gt.source,
        source_ref=gt.source_ref,
        changes=[Change.model_validate(c) for c in gt.changes or []],
        scenes=scenes,
        start_s=seg.start_s,
        end_s=seg.end_s,
        uri=video.uri,
        scope=video.scope,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite hands timezone-aware columns back naive (in UTC): compare and report them as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
