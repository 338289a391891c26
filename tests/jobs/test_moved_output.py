"""An output is where its database says it is (#30): a self-contained output moved to another folder resumes
there; a job whose database lives elsewhere refuses a resume into another folder, naming both."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import sqlite_url
from tests.support import e2e as checks
from tests.support.films import film_copy
from tests.support.play import small_screenplay

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]


def _planned(tmp_path, **spec) -> tuple[str, JobSpec]:
    """A job split and cut but not annotated (`v2s plan`): unfinished, with proxies in its output."""
    film = film_copy(small_screenplay(), tmp_path / "film" / "moved.mp4")
    job = JobSpec(source=str(film), out=tmp_path / "out", max_segment_s=30, num_cpus=2, **spec)
    job_id, _ = run_job(job, prepare_only=True)
    return job_id, job


def test_a_moved_self_contained_output_resumes_where_it_is_now(tmp_path):
    job_id, spec = _planned(tmp_path)
    moved = tmp_path / "elsewhere" / "out"
    moved.parent.mkdir()
    shutil.move(spec.out, moved)
    with SimulatorServer(small_screenplay()) as server, checks.models_from(server, "sim-test-key-moved"):
        resumed = CliRunner().invoke(app, ["resume", job_id, "--out", str(moved)])
    assert resumed.exit_code == 0, resumed.output
    assert not spec.out.exists()  # nothing was written to the old place
    records = checks.records(moved)
    assert records and all(r["video"]["proxy_uri"].startswith("proxies/") for r in records)
    verified = CliRunner().invoke(app, ["verify", str(moved)])
    assert verified.exit_code == 0, verified.output


def test_a_resume_into_another_folder_than_the_databases_is_refused_naming_both(tmp_path):
    database = tmp_path / "db" / "jobs.sqlite"
    database.parent.mkdir()
    job_id, spec = _planned(tmp_path, database_url=sqlite_url(database))
    moved = tmp_path / "moved-out"
    shutil.move(spec.out, moved)
    refused = CliRunner().invoke(
        app, ["resume", job_id, "--out", str(moved), "--database-url", sqlite_url(database)]
    )
    assert refused.exit_code == 2
    assert str(spec.out) in refused.output and str(moved) in refused.output
    assert "Traceback" not in refused.output and not spec.out.exists()
