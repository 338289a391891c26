"""The ground truth tables (migration 0010) on SQLite and PostgreSQL: a review stored per segment, the newest
one winning, an unknown segment refused by name, and the models matching what the migrations build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from profiles_db.ground_truth import GtEventIn, GtSceneIn, GtSegmentIn, load, store
from profiles_db.models import Base, GtEvent, GtSegment
from tests.support.db import make_video

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _segment(video_id: str, line: str, when: datetime, reviewer: str = "ann@example.com") -> GtSegmentIn:
    event = GtEventIn(
        region_id="sc1e1", timestamp_s=61.0, character="Nora Vance", character_code="char_001", dialogue=line
    )
    scene = GtSceneIn(region_id="sc1", scene_id=1, location="Ticket hall", start_s=60.0, events=[event])
    return GtSegmentIn(
        video_id=video_id,
        segment_index=2,
        record_id="rec-2",
        reviewer=reviewer,
        reviewed_at=when,
        source_ref="export.json task 7 annotation 3",
        scenes=[scene],
    )


def test_a_review_is_stored_per_segment_and_the_newest_one_wins(database):
    make_video(database, scope="film", video_id="vid", segments=3)
    assert store(database, [_segment("vid", "Who's there?", T0)]).stored == ["vid#2"]
    newer = store(database, [_segment("vid", "Who is there?", T0 + timedelta(hours=1), "lead@example.com")])
    older = store(database, [_segment("vid", "stale", T0 - timedelta(hours=1))])
    assert newer.stored == ["vid#2"] and older.stored == [] and "a newer review" in older.skipped[0]
    (gt,) = load(database)
    assert (gt.reviewer, gt.segment_index, gt.start_s, gt.end_s) == ("lead@example.com", 2, 60.0, 120.0)
    assert gt.scenes[0].events[0].dialogue == "Who is there?" and gt.reviewed_at == T0 + timedelta(hours=1)
    with database.sessions() as s:  # the replaced review's rows went with it
        assert s.scalar(select(func.count()).select_from(GtSegment)) == 1
        assert s.scalar(select(func.count()).select_from(GtEvent)) == 1


def test_an_unknown_segment_fails_the_whole_import_by_name(database):
    make_video(database, scope="film", video_id="vid", segments=1)
    with pytest.raises(ValueError, match="unknown segment 2 of video vid"):
        store(database, [_segment("vid", "x", T0)])
    assert load(database) == []


def test_the_models_are_what_the_migrations_build(database):
    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
