"""`v2s export` never leaves a partial file under its final name.

A real `v2s export` process runs with a file-size limit (RLIMIT_FSIZE) set below the size of its train.jsonl, so
the kernel stops that write part way (EFBIG), as a full disk would. Before, train.jsonl was left with part of its
rows under its final name; now it is written to a temp file and renamed, so it is either whole or absent. A
second export without the limit then gives the bytes of a fault-free export.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

from tests.export.shapes import write_shapes

ROOT = Path(__file__).resolve().parents[2]


def _export(out: Path, to: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    def limited() -> None:  # in the child only: its own writes beyond `limit` bytes fail
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", "export", str(out), "--to", str(to), "--format", "hf"],
        cwd=ROOT,
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_export_whose_write_fails_midway_leaves_no_partial_file_under_its_name(tmp_path):
    out = tmp_path / "out"
    write_shapes(out, tmp_path / "v2s.sqlite")
    reference = tmp_path / "reference"
    assert _export(out, reference).returncode == 0
    train = (reference / "train.jsonl").read_bytes()
    assert train.count(b"\n") == 3

    to = tmp_path / "export"
    failed = _export(out, to, limit=len(train) // 2)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stdout + failed.stderr, failed.stderr[-3000:]
    assert len((failed.stdout + failed.stderr).strip().splitlines()) == 1, failed.stdout + failed.stderr
    assert not (to / "train.jsonl").exists()  # whole or absent, never 1½ rows
    assert not [p for p in to.rglob("*") if p.is_file() and p.name.endswith(".jsonl")]

    again = _export(out, to)
    assert again.returncode == 0, again.stderr
    assert (to / "train.jsonl").read_bytes() == train
    assert not [p for p in to.rglob("*") if ".partial" in p.name]  # an export cleans up after itself
