"""The whole engine once, for real: ffmpeg-rendered film → PySceneDetect → Ray → real SDKs over HTTP to the
simulator → CPM on SQLite → shards. The module runs one job and checks everything DESIGN.md §7 promises
(the checks live in tests/e2e_checks.py, shared with the PostgreSQL and bucket end-to-end tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.simulator.film import render_film, render_silent_film
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from tests import e2e_checks as checks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module")
def first_run(simulator_env, tmp_path_factory):
    film, screenplay, _ = simulator_env
    out = tmp_path_factory.mktemp("run")
    job_id, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2))
    return out, job_id, summary, screenplay


def test_every_segment_becomes_one_valid_record(first_run):
    out, _, summary, _ = first_run
    checks.check_every_segment_is_one_valid_record(out, summary)


def test_manifest_matches_the_files(first_run):
    checks.check_manifest_matches_the_files(first_run[0])


def test_late_named_character_carries_his_name_in_every_segment(first_run):
    out, _, _, screenplay = first_run
    checks.check_late_named_character_everywhere(out, screenplay)


def test_costume_change_character_is_one_character(first_run):
    out, _, _, screenplay = first_run
    checks.check_costume_change_is_one_character(out, screenplay)


def test_second_run_on_the_same_output_writes_nothing_twice(first_run, simulator_env):
    out = first_run[0]
    film, _, server = simulator_env
    checks.check_rerun_writes_nothing_twice(
        out,
        server,
        lambda: run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2))[1],
    )


def test_broken_inputs_fail_alone_with_clear_reasons(simulator_env, tmp_path):
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    screenplay = simulator_env[1]
    render_film(screenplay, bucket / "good.mp4", until_s=56)
    (bucket / "zero.mp4").write_bytes(b"")
    (bucket / "notes.mp4").write_text("these are meeting notes, not a film\n" * 50)
    render_silent_film(bucket / "silent.mp4", seconds=20)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(bucket), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "zero.mp4: file is empty" in text
    assert "notes.mp4: not a readable video" in text
    annotated = {Path(r["video"]["uri"]).name for r in checks.records(out)}
    assert annotated == {"good.mp4", "silent.mp4"}
    shutil.rmtree(out)


def test_profiles_commands_read_and_correct_the_memory(first_run, tmp_path):
    checks.check_profiles_commands(str(first_run[0] / "v2s.sqlite"), tmp_path / "graph.png")
