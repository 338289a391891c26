"""`v2s status` lists the warnings the CPM stores with a done plot stage (values it dropped or cut by design),
per segment, capped, only the asked job's; on SQLite and PostgreSQL (the query reads one JSON member)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.report import MAX_WARNINGS
from profiles_db.cpm import CharacterProfileManager
from profiles_db.normalize import MAX_NAME
from profiles_db.stages import StageStore, StageUsage
from tests.support.db import plot_answer

WIDE = {"COLUMNS": "400"}  # rich wraps long lines at the terminal width; each warning must stay on one line


def video(db, job: str, video_id: str, segments: int = 1) -> list[int]:
    store = StageStore(db)
    store.ensure_job(job, "/films", f"/out/{job}", {})
    store.register_video(video_id, f"/films/{video_id}.mp4", "series-a", None, job)
    return store.save_segments(
        video_id, [(i * 60.0, (i + 1) * 60.0, f"/proxy/{video_id}-{i}.mp4") for i in range(segments)]
    )


def plot_done(db, segment_id: int, job: str, result: dict) -> None:
    store = StageStore(db)
    assert store.claim(segment_id, "plot", "test", job)
    store.complete(segment_id, "plot", result, StageUsage(model="m", input_tokens=10, output_tokens=2))


def status(db, *args: str) -> str:
    result = CliRunner().invoke(app, ["status", *args, "--database-url", db.url], env=WIDE)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_stored_warnings_are_listed_per_segment_and_only_for_the_job(database):
    first = video(database, "job-1", "film-a", segments=2)
    other = video(database, "job-2", "film-b")
    plot_done(database, first[0], "job-1", {"answer": {"x": 1}, "warnings": ["dropped [bold]one[/]"]})
    plot_done(database, first[1], "job-1", {"warnings": []})
    plot_done(database, other[0], "job-2", {"warnings": ["from another job"]})

    text = status(database, "job-1")
    assert "warnings 1 from the character memory (1 segment;" in text
    assert "/films/film-a.mp4 segment 1\n    dropped [bold]one[/]" in text
    assert "segment 2\n" not in text and "from another job" not in text

    everything = status(database)
    assert "warnings 2 from the character memory (2 segments;" in everything
    assert "from another job" in everything


def test_without_warnings_there_is_no_section(database):
    segs = video(database, "job-1", "film-a")
    plot_done(database, segs[0], "job-1", {"code_map": {}})
    assert "warnings" not in status(database, "job-1")


def test_many_warnings_are_capped(database):
    segs = video(database, "job-1", "film-a", segments=3)
    stored = [[f"w{n}-{i}." for i in range(MAX_WARNINGS // 2 + 1)] for n in range(len(segs))]
    for sid, warnings in zip(segs, stored, strict=True):
        plot_done(database, sid, "job-1", {"warnings": warnings})
    every = [w for warnings in stored for w in warnings]
    text = status(database, "job-1")
    assert f"warnings {len(every)} from the character memory (3 segments;" in text
    assert all(f"    {w}\n" in text for w in every[:MAX_WARNINGS])
    assert not any(w in text for w in every[MAX_WARNINGS:])
    assert "film-a.mp4 segment 3" not in text  # no heading for a segment none of whose warnings fit
    assert f"… and {len(every) - MAX_WARNINGS} more" in text


def test_an_over_long_name_dropped_by_the_cpm_shows_in_status(database):
    """The way reason_plot stores it: the CPM's ApplyReport.warnings in the plot stage's result."""
    segs = video(database, "job-1", "film-a")
    long_name = "Sal [/] " + "Moreno " * 40
    report = CharacterProfileManager(database).apply(
        "series-a",
        segs[0],
        plot_answer(1, [{"id": "char_001", "name": long_name, "appearance": "grey coat"}]),
    )
    assert len(long_name.strip()) > MAX_NAME and report.warnings
    plot_done(
        database,
        segs[0],
        "job-1",
        {"answer": {}, "code_map": report.code_map, "warnings": report.warnings},
    )
    text = status(database, "job-1")
    assert "/films/film-a.mp4 segment 1" in text
    assert f"name of {len(long_name.strip())} characters ignored (limit {MAX_NAME}): 'Sal [/] Moreno" in text


@pytest.mark.parametrize("stored", [None, {"warnings": None}, {"warnings": "not a list"}])
def test_results_without_a_warning_list_are_ignored(database, stored):
    segs = video(database, "job-1", "film-a")
    plot_done(database, segs[0], "job-1", stored)
    assert "warnings" not in status(database, "job-1")
