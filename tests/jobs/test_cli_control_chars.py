"""Names from a file system reach the terminal escaped: a file or folder name holding ANSI escape sequences, a
carriage return or a right-to-left override is printed as `\\x1b[2J`, `\\x0d`, `\\u202e`, never as the raw
characters that would clear the screen, overwrite the line or reverse what follows."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from jobs.cli import app
from jobs.report import print_summary
from jobs.terminal import terminal_safe
from profiles_db.stages import StageStore
from tests.export.shapes import write_shapes
from workers.driver import RunSummary

HOSTILE = "film\x1b[2J\x1b[31m red\rX\u202egpj.mp4"
SHOWN = "film\\x1b[2J\\x1b[31m red\\x0dX\\u202egpj.mp4"
RAW = ("\x1b", "\r", "\u202e", "\x9b")
WIDE = {"COLUMNS": "400"}


def _clean(text: str) -> None:
    assert not [c for c in RAW if c in text], repr(text)


def test_the_helper_escapes_controls_and_keeps_everything_else():
    assert terminal_safe(HOSTILE) == SHOWN
    assert terminal_safe("Élodie — 東京\\x.mp4\nnext\tline") == "Élodie — 東京\\x.mp4\nnext\tline"
    assert terminal_safe("a\x9bb\u2066c\u2028d\x7f") == "a\\x9bb\\u2066c\\u2028d\\x7f"


def test_status_and_the_run_summary_show_a_hostile_file_name_escaped(sqlite_database):
    db = sqlite_database
    store = StageStore(db)
    uri = f"/films/{HOSTILE}"
    store.ensure_job("job-1", uri, "/out", {})
    store.register_video("vid-1", uri, "scope", None, "job-1")
    (seg,) = store.save_segments("vid-1", [(0.0, 60.0, "/proxy/1.mp4")])
    assert store.claim(seg, "plot", "test", "job-1")
    store.fail(seg, "plot", f"cannot read {uri}", outcome="error")

    result = CliRunner().invoke(app, ["status", "job-1", "--database-url", db.url], env=WIDE)
    assert result.exit_code == 0, result.output
    _clean(result.output)
    assert SHOWN in result.output

    out = io.StringIO()
    summary = RunSummary(videos=1, segments=1, failed_videos={uri: f"{uri}: no video stream"})
    print_summary(Console(file=out, width=400), "job-1", summary, db, f"/out/{HOSTILE}")
    _clean(out.getvalue())
    assert SHOWN in out.getvalue()


def test_export_shows_a_hostile_folder_name_escaped(tmp_path):
    out = tmp_path / "out"
    write_shapes(out, tmp_path / "v2s.sqlite")
    to = tmp_path / HOSTILE.replace(".mp4", "")
    result = CliRunner().invoke(app, ["export", str(out), "--to", str(to)], env=WIDE)
    assert result.exit_code == 0, result.output
    _clean(result.output)
    assert "train.jsonl: 3 rows" in result.output and "\\u202e" in result.output
    assert (to / "train.jsonl").exists()  # the folder itself is named as given
