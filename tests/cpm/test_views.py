"""The SQL inspection layer: the views and every example query of docs/sql.md, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from profiles_db.cpm import CharacterProfileManager
from profiles_db.stages import StageStore, StageUsage
from tests.support.db import make_video, plot_answer

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
QUERIES = dict(re.findall(r"```sql\n-- query: (\w+)\n(.*?)```", DOC.read_text(), flags=re.S))


@pytest.fixture
def story(database):
    """series-a: Anna (costume change), a stranger named Tomas (char_004) in segment 2, "Tom" merged into him."""
    segs = make_video(database, scope="series-a", segments=3, job_id="job-1", episode=1)
    cpm = CharacterProfileManager(database)
    cpm.apply(
        "series-a",
        segs[0],
        plot_answer(
            1,
            [
                {"id": "char_001", "name": "Anna", "aliases": ["Annie"], "appearance": "red coat"},
                {"id": "unknown_001", "appearance": "grey beard"},
            ],
            relationships=[
                {
                    "char1_id": "char_001",
                    "char2_id": "unknown_001",
                    "relationship": "Strangers",
                    "evidence": "x",
                }
            ],
            narrative="Anna meets unknown_001.",
        ),
    )
    report = cpm.apply(
        "series-a",
        segs[1],
        plot_answer(
            2,
            [
                {"id": "char_001", "name": "Anna", "new_info": {"appearance": "blue gown"}},
                {"id": "char_003", "name": "Tom", "aliases": ["TOMAS"]},
            ],
            name_updates=[{"unknown_id": "unknown_001", "name": "Tomas", "evidence": "'Thanks, Tomas'"}],
            same_as=[{"id": "char_004", "same_as": "char_001", "confidence": "low", "evidence": "both tall"}],
        ),
    )
    assert report.merged[0][:2] == ("char_003", "char_004")
    store = StageStore(database)
    for sid in segs[:2]:
        assert store.claim(sid, "plot", "test", "job-1")
        store.complete(
            sid, "plot", {}, StageUsage(model="m", input_tokens=100, output_tokens=10, cost_usd=0.5)
        )
    store.fail(segs[2], "plot", "boom")
    return database


def run(database, name: str) -> list[dict]:
    with database.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(QUERIES[name]))]


def test_every_documented_query_runs(story):
    assert set(QUERIES) >= {"profiles", "names", "together", "merges", "appearance", "progress"}
    for name in QUERIES:
        run(story, name)


def test_views_answer_the_documented_questions(story):
    profiles = run(story, "profiles")
    assert [(p["code"], p["name"]) for p in profiles] == [("char_001", "Anna"), ("char_004", "Tomas")]
    assert profiles[0]["aliases"] == "Anna, Annie" and profiles[0]["appearances"] == 2
    assert profiles[1]["former_codes"] == "char_003, unknown_001"
    assert set(profiles[1]["aliases"].split(", ")) == {"Tomas", "Tom"}

    assert run(story, "resolve") == [
        {"code": "unknown_001", "kind": "renamed", "canonical_code": "char_004", "canonical_name": "Tomas"}
    ]
    assert [r["name"] for r in run(story, "names")] == ["Tom", "Tomas"]
    together = run(story, "together")
    assert [(r["a_code"], r["b_code"], r["segments_together"]) for r in together] == [
        ("char_001", "char_004", 2)
    ]
    rels = run(story, "relationships")
    assert [(r["a_name"], r["label"], r["b_name"], r["first_idx"]) for r in rels] == [
        ("Anna", "Strangers", "Tomas", 1)
    ]
    merges = run(story, "merges")
    assert [(m["merged_code"], m["into_code"], m["segment_idx"], m["undone_at"]) for m in merges] == [
        ("char_003", "char_004", 2, None)
    ]
    assert "TOMAS" in merges[0]["reason"]
    assert [n["new_name"] for n in run(story, "namings")] == ["Tomas"]
    history = run(story, "name_history")
    assert [(h["old_code"], h["new_code"], h["new_name"], h["segment_idx"]) for h in history] == [
        ("unknown_001", "char_004", "Tomas", 2)
    ]
    assert history[0]["evidence"] == "'Thanks, Tomas'"
    pending = run(story, "pending_proposals")
    assert [(p["from_code"], p["into_code"], p["confidence"], p["segment_idx"]) for p in pending] == [
        ("char_004", "char_001", "low", 2)
    ]
    assert [a["appearance"] for a in run(story, "appearance")] == ["red coat", "blue gown"]
    progress = run(story, "progress")
    assert [(p["stage"], p["total"], p["done"], p["failed"]) for p in progress] == [("plot", 3, 2, 1)]
    assert (progress[0]["input_tokens"], progress[0]["output_tokens"]) == (200, 20)
    assert progress[0]["cost_usd"] == pytest.approx(1.0)
    assert [s["summary"] for s in run(story, "story")] == ["Anna meets unknown_001.", ""]


def test_profile_view_history_follows_story_order_across_episodes(database):
    later = make_video(database, scope="show", episode=2, segments=1)
    earlier = make_video(database, scope="show", episode=1, segments=1)
    cpm = CharacterProfileManager(database)
    # applied out of story order on purpose (a repair by hand): the history still follows the story
    cpm.apply(
        "show",
        later[0],
        plot_answer(2, [{"id": "char_001", "name": "Ada", "appearance": "armour"}]),
        enforce_order=False,
    )
    cpm.apply(
        "show",
        earlier[0],
        plot_answer(1, [{"id": "char_001", "name": "Ada", "appearance": "rags"}]),
        enforce_order=False,
    )
    with database.engine.connect() as conn:
        history = conn.execute(
            text("SELECT appearance_history FROM v_character_profiles WHERE scope = 'show'")
        ).scalar_one()
    assert history == "rags | armour"
    assert cpm.resolve("show", "char_001").appearance_history == ["rags", "armour"]
