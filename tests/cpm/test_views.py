"""The SQL inspection layer: the views and every example query of docs/sql.md, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from profiles_db.cpm import CharacterProfileManager
from profiles_db.stages import StageStore, StageUsage
from tests.support.db import dialect, make_video, plot_answer

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
# "-- query: NAME" runs on both databases; "-- query: NAME (sqlite)" / "(postgresql)" on that one only
FOUND = re.findall(
    r"```sql\n-- query: (\w+)(?: \((sqlite|postgresql)\))?\n(.*?)```", DOC.read_text(), flags=re.S
)
QUERIES = {name: sql for name, only, sql in FOUND if not only}
PER_DIALECT = {(name, only): sql for name, only, sql in FOUND if only}


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
    sql = QUERIES.get(name) or PER_DIALECT[(name, dialect(database))]
    with database.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(sql))]


def array(value) -> list:
    """A view's JSON array as Python: jsonb arrives as a list, SQLite's json_group_array as JSON text."""
    return json.loads(value) if isinstance(value, str) else value


def test_every_documented_query_runs(story):
    assert set(QUERIES) >= {"profiles", "names", "together", "merges", "appearance", "progress", "first_name"}
    # every query that takes a JSON array apart is given for both databases
    assert {n for n, _ in PER_DIALECT} == {"by_alias", "appearance_steps", "recoded"}
    assert {(n, d) for n in {n for n, _ in PER_DIALECT} for d in ("sqlite", "postgresql")} == set(PER_DIALECT)
    for name in {*QUERIES, *(n for n, _ in PER_DIALECT)}:
        run(story, name)


def test_views_answer_the_documented_questions(story):
    profiles = run(story, "profiles")
    assert [(p["code"], p["name"]) for p in profiles] == [("char_001", "Anna"), ("char_004", "Tomas")]
    assert array(profiles[0]["aliases"]) == ["Anna", "Annie"] and profiles[0]["appearances"] == 2
    assert array(profiles[0]["former_codes"]) == []
    assert array(profiles[1]["former_codes"]) == ["char_003", "unknown_001"]
    assert set(array(profiles[1]["aliases"])) == {"Tomas", "Tom"}
    assert run(story, "first_name")[0] == {"code": "char_001", "first_name": "Anna"}
    assert [(r["code"], r["alias"]) for r in run(story, "by_alias")] == [("char_001", "Annie")]
    steps = run(story, "appearance_steps")
    assert [(r["code"], r["step"], r["appearance"]) for r in steps] == [
        ("char_001", 1, "red coat"),
        ("char_001", 2, "blue gown"),
        ("char_004", 1, "grey beard"),
    ]
    recoded = run(story, "recoded")
    assert [(r["code"], r["codes_before"], array(r["former_codes"])) for r in recoded] == [
        ("char_004", 2, ["char_003", "unknown_001"])
    ]

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
    assert float(progress[0]["cost_usd"]) == pytest.approx(1.0)
    assert aware(progress[0]["updated_at"]) > datetime.now(UTC) - timedelta(hours=1)
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
    assert array(history) == ["rags", "armour"]
    assert cpm.resolve("show", "char_001").appearance_history == ["rags", "armour"]


def aware(value) -> datetime:
    """A view's timestamp: timestamptz on PostgreSQL, ISO 8601 text with its offset on SQLite."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert moment.utcoffset() == timedelta(0), value
    return moment


def test_arrays_keep_names_whole_and_are_never_null(database):
    """A name with the old separators (", ", " | "), quotes or a backslash is one element, and a character
    without aliases, history or former codes has [] rather than NULL."""
    segs = make_video(database, scope="s", segments=1)
    odd = 'Tomas "Skipper" Reyes, Jr. | C:\\'
    CharacterProfileManager(database).apply(
        "s",
        segs[0],
        plot_answer(
            1,
            [
                {
                    "id": "char_001",
                    "name": odd,
                    "aliases": ["Skip, the | pilot"],
                    "appearance": "coat, hat | boots",
                },
                {"id": "unknown_001"},
            ],
        ),
    )
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, aliases, appearance_history, former_codes, created_at "
                "FROM v_character_profiles WHERE scope = 's' ORDER BY code"
            )
        ).all()
    assert [array(r.aliases) for r in rows] == [[odd, "Skip, the | pilot"], []]
    assert [array(r.appearance_history) for r in rows] == [["coat, hat | boots"], []]
    assert [array(r.former_codes) for r in rows] == [[], []]
    for row in rows:
        aware(row.created_at)


def test_job_progress_rounds_cost_to_micro_dollars(database):
    segs = make_video(database, scope="s", segments=2, job_id="job-c")
    store = StageStore(database)
    for sid, cost in zip(segs, (0.1234567891, 0.0000004), strict=True):
        assert store.claim(sid, "script", "test", "job-c")
        store.complete(
            sid, "script", {}, StageUsage(model="m", input_tokens=1, output_tokens=1, cost_usd=cost)
        )
    with database.engine.connect() as conn:
        cost = conn.execute(text("SELECT cost_usd FROM v_job_progress WHERE job_id = 'job-c'")).scalar_one()
    if dialect(database) == "postgresql":
        assert cost == Decimal("0.123457")  # numeric: sums of it add up exactly
    else:
        assert cost == pytest.approx(0.123457, abs=1e-12)
