"""Text from a model, the database or a file name reaches rich as text, never as markup: a character called
"Sal [/] Moreno [bold]x" neither crashes `v2s profiles …` / `v2s status` (rich.errors.MarkupError) nor
changes how they render, and a ":100:" in an alias stays as written instead of becoming an emoji."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from jobs.cli import app
from jobs.report import print_summary
from profiles_db.cpm import CharacterProfileManager
from profiles_db.stages import StageStore, StageUsage
from tests.support.db import plot_answer
from workers.driver import RunSummary
from workers.results import SegmentOutcome

NAME = "Sal [/] Moreno [bold]x"
SHOWN = "Sal [/] Moreno"
SCOPE = "noir [/red]"
JOB = "job-[bold]"
URI = "/films/Sal [/] Moreno [bold]x.mp4"
WIDE = {"COLUMNS": "400"}  # rich folds long cells at the terminal width; the names must stay on one line


@pytest.fixture
def hostile(sqlite_database):
    """One video whose file name, scope and job carry markup; its characters' names, alias, appearance and
    relationship label too; its plot stage is done, with the CPM's warning about an over-long alias stored."""
    db = sqlite_database
    store = StageStore(db)
    store.ensure_job(JOB, URI, "/out/[red]", {})
    store.register_video("vid-1", URI, SCOPE, None, JOB)
    segs = store.save_segments("vid-1", [(0.0, 60.0, "/proxy/1.mp4"), (60.0, 120.0, "/proxy/2.mp4")])
    report = CharacterProfileManager(db).apply(
        SCOPE,
        segs[0],
        plot_answer(
            1,
            [
                {
                    "id": "char_001",
                    "name": NAME,
                    "aliases": ["[i]Sally[/i]", "Mr :100:", "Sal [/] Moreno " + "x" * 300],
                    "appearance": "coat [on red]stained[/on red] [/]",
                },
                {"id": "char_002", "name": "Vera [link=http://x]"},
            ],
            relationships=[
                {
                    "char1_id": "char_001",
                    "char2_id": "char_002",
                    "relationship": "[bold]rivals[/]",
                    "evidence": "x",
                }
            ],
            narrative="Sal meets Vera.",
        ),
    )
    assert any(SHOWN in w for w in report.warnings), report.warnings  # the over-long alias, quoted
    assert store.claim(segs[0], "plot", "test", JOB)
    store.complete(
        segs[0],
        "plot",
        {"code_map": report.code_map, "warnings": report.warnings},
        StageUsage(model="[bold]model[/]", input_tokens=10, output_tokens=5, cost_usd=0.1),
    )
    assert store.claim(segs[1], "plot", "test", JOB)
    store.fail(segs[1], "plot", "model said [/] and [bold]", outcome="invalid_output")
    return db


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_profiles_list_and_show_print_names_as_written(hostile):
    listed = invoke("profiles", "list", "--database-url", hostile.url)
    assert SHOWN in listed and NAME in listed
    assert "[i]Sally[/i]" in listed and "Mr :100:" in listed
    assert SCOPE in listed and "Vera [link=http://x]" in listed

    shown = invoke("profiles", "show", "char_001", "--database-url", hostile.url)
    assert f"char_001 {NAME}" in shown  # the title
    assert "coat [on red]stained[/on red] [/]" in shown and "[i]Sally[/i]" in shown

    related = invoke("profiles", "relationships", "--database-url", hostile.url)
    assert "[bold]rivals[/]" in related and SHOWN in related


def test_profiles_corrections_print_names_as_written(hostile):
    renamed = invoke("profiles", "rename", "char_002", "Vera [/] Cruz", "--database-url", hostile.url)
    assert "char_002 is now char_002 Vera [/] Cruz" in renamed
    merged = invoke("profiles", "merge", "char_002", "char_001", "--database-url", hostile.url)
    assert f"merged into char_001 {NAME}" in merged
    restored = invoke("profiles", "unmerge", "char_002", "--database-url", hostile.url)
    assert "char_002 restored as char_002 Vera [/] Cruz" in restored
    refused = CliRunner().invoke(
        app, ["profiles", "rename", "char_001", "[/]" + "y" * 300, "--database-url", hostile.url], env=WIDE
    )
    assert refused.exit_code == 1 and "'[/]yyy" in refused.output, refused.output


def test_status_prints_file_names_errors_and_warnings_as_written(hostile):
    text = invoke("status", JOB, "--database-url", hostile.url)
    assert SHOWN in text  # the file name (jobs and per-video tables) and the stored CPM warning
    assert URI in text and "/out/[red]" in text and f"stages of {JOB}" in text
    assert "model said [/] and [bold]" in text
    assert invoke("status", "--database-url", hostile.url).count(URI) >= 3


def test_run_summary_prints_file_names_and_errors_as_written(hostile):
    out = io.StringIO()
    summary = RunSummary(
        videos=1,
        segments=2,
        stage_failures=[SegmentOutcome(segment_id=2, status="failed", error="model said [/] and [bold]")],
    )
    print_summary(Console(file=out, width=400), JOB, summary, hostile, "/out/[red]")
    printed = out.getvalue()
    assert f"v2s job {JOB}" in printed and "/out/[red]/shards" in printed
    assert "model said [/] and [bold]" in printed
