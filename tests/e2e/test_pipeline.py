"""The whole engine once per database, for real: ffmpeg-rendered film → PySceneDetect → Ray → real SDKs over HTTP
to the simulator → CPM on SQLite, then on PostgreSQL (a fresh database made by tests/support/db.py) → shards.
Each database runs one job and is checked against everything DESIGN.md §7 promises (the checks live in
tests/support/e2e.py, shared with the bucket end-to-end tests)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from annotator.simulator.screenplay import Screenplay
from evaluation import evaluate_dataset
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from tests.support import e2e as checks
from tests.support.db import _truncate
from tests.support.films import film_copy, silent_copy
from workers.driver import RunSummary

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]


@dataclass(frozen=True)
class Run:
    """One finished job and how to reach its database."""

    spec: JobSpec
    job_id: str
    summary: RunSummary
    screenplay: Screenplay
    db_arg: str  # what `v2s profiles --database-url` takes for the job's database

    @property
    def out(self) -> Path:
        return Path(self.spec.out)


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    # The simulator keeps no state between jobs (answers come from the screenplay alone) and the response cache
    # lives in each job's own database, so both databases' jobs share one film and one server.
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request) -> str | None:
    """The job's database: None for its default (OUT/v2s.sqlite), else a PostgreSQL URL. Module scope, so pytest
    runs every test of one database before the next and the job below runs once per database."""
    if request.param == "sqlite":
        return None
    # tests/support/db.py: skips when PostgreSQL is unreachable, fails instead under V2S_REQUIRE_POSTGRES=1
    url = request.getfixturevalue("postgres_url")
    db = Database(url, auto_upgrade=False)
    _truncate(db)  # the session's database may hold other tests' rows: start this job from empty tables
    db.dispose()
    return url


@pytest.fixture(scope="module")
def first_run(simulator_env, database_url, tmp_path_factory) -> Run:
    film, screenplay, _ = simulator_env
    out = tmp_path_factory.mktemp("run")
    spec = JobSpec(source=str(film), out=out, database_url=database_url, max_segment_s=60, num_cpus=2)
    job_id, summary = run_job(spec)
    db_arg = database_url or str(out / "v2s.sqlite")
    return Run(spec=spec, job_id=job_id, summary=summary, screenplay=screenplay, db_arg=db_arg)


def test_the_job_state_is_in_the_chosen_database(first_run, database_url):
    # A PostgreSQL job must leave no SQLite file behind; a default job keeps its state beside the shards.
    assert (first_run.out / "v2s.sqlite").exists() == (database_url is None)
    db = Database(first_run.spec.db_url(), auto_upgrade=False)
    try:
        with db.engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM jobs WHERE id = :j"), {"j": first_run.job_id})
            assert status.scalar() == "done"
            exported = conn.execute(
                text("SELECT count(*) FROM stage_runs WHERE stage = 'export' AND status = 'done'")
            ).scalar()
            assert exported == first_run.summary.segments == 4
    finally:
        db.dispose()


def test_every_segment_becomes_one_valid_record(first_run):
    checks.check_every_segment_is_one_valid_record(first_run.out, first_run.summary)


def test_manifest_matches_the_files(first_run):
    checks.check_manifest_matches_the_files(first_run.out)


def test_late_named_character_carries_his_name_in_every_segment(first_run):
    checks.check_late_named_character_everywhere(first_run.out, first_run.screenplay)


def test_costume_change_character_is_one_character(first_run):
    checks.check_costume_change_is_one_character(first_run.out, first_run.screenplay)


def test_second_run_on_the_same_output_writes_nothing_twice(first_run, simulator_env):
    server = simulator_env[2]
    checks.check_rerun_writes_nothing_twice(first_run.out, server, lambda: run_job(first_run.spec)[1])


def test_profiles_commands_read_and_correct_the_memory(first_run, tmp_path):
    checks.check_profiles_commands(first_run.db_arg, tmp_path / "graph.png")


def test_broken_inputs_fail_alone_with_clear_reasons(simulator_env, tmp_path):
    # One database is enough here: what is checked is how the run reports bad files, not where it keeps state.
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    screenplay = simulator_env[1]
    film_copy(screenplay, bucket / "good.mp4", until_s=56)
    (bucket / "zero.mp4").write_bytes(b"")
    (bucket / "notes.mp4").write_text("these are meeting notes, not a film\n" * 50)
    silent_copy(bucket / "silent.mp4", seconds=20)
    # entries the listing leaves out, each reported with why: a dangling symlink, a second path to a file
    (bucket / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    (bucket / "again.mp4").symlink_to(bucket / "good.mp4")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(bucket), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "zero.mp4: file is empty" in text
    assert "notes.mp4: not a readable video" in text
    assert f"skipped input {bucket / 'gone.mp4'}: " in text and "dangling" in text
    assert f"skipped input {bucket / 'again.mp4'}: " in text
    annotated = {Path(r["video"]["uri"]).name for r in checks.records(out)}
    assert annotated == {"good.mp4", "silent.mp4"}
    # `v2s status` keeps saying so after the run, in the table and in its JSON, with the same reasons
    db_arg = ["--out", str(out)]  # its default database, OUT/v2s.sqlite
    shown = CliRunner().invoke(app, ["status", *db_arg], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert "skipped inputs 2 not processed:" in shown.output
    report = json.loads(CliRunner().invoke(app, ["status", *db_arg, "--format", "json"]).stdout)
    reasons = {Path(e["uri"]).name: e["reason"] for e in report["skipped_inputs"]}
    assert set(reasons) == {"gone.mp4", "again.mp4"}
    assert all(f"  {bucket / name}: {reason}" in shown.output for name, reason in reasons.items())
    # and it agrees with the run's own summary on every count
    assert re.search(r"videos\W+4 \(2 ok, 2 failed\)", text)
    assert report["videos"] == {"done": 2, "failed": 2}
    assert {Path(f["uri"]).name for f in report["failed_inputs"]} == {"zero.mp4", "notes.mp4"}
    segments = int(re.search(r"segments\W+(\d+)", text).group(1))
    assert report["segments"] == segments == sum(1 for _ in checks.records(out))
    assert report["shards"][0]["records"] == segments
    assert {s["stage"]: s["done"] for s in report["stages"]} == dict.fromkeys(
        ("plot", "script", "distill", "export"), segments
    )
    shutil.rmtree(out)


def test_the_output_scores_100_against_the_screenplay(first_run, simulator_env):
    """At imperfection 0 the simulator tells exactly what each request's pictures and sound show, so the records
    score 100 against the film's screenplay only if every segment's video showed all of its segment."""
    film = simulator_env[0]
    result = evaluate_dataset(next(film.parent.glob("*.screenplay.json")), first_run.out / "shards")
    assert result.events.overall()["f1"] == pytest.approx(1.0) and result.scenes.overall()[
        "f1"
    ] == pytest.approx(1.0)
