"""The end-to-end run of tests/test_pipeline_e2e.py with the job's database on the real PostgreSQL (a fresh
database made by tests/db_fixtures.py), checked by the same assertions (tests/e2e_checks.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from tests import e2e_checks as checks
from tests.db_fixtures import _truncate

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module")
def pg_url(postgres_url):
    db = Database(postgres_url, auto_upgrade=False)
    _truncate(db)  # the session's database may hold other tests' rows: start this job from empty tables
    db.dispose()
    return postgres_url


@pytest.fixture(scope="module")
def first_run(simulator_env, pg_url, tmp_path_factory):
    film, screenplay, _ = simulator_env
    out = tmp_path_factory.mktemp("run")
    spec = JobSpec(source=str(film), out=out, database_url=pg_url, max_segment_s=60, num_cpus=2)
    job_id, summary = run_job(spec)
    return out, job_id, summary, screenplay


def test_the_job_state_is_in_postgresql(first_run, pg_url):
    out, job_id, _, _ = first_run
    assert not (out / "v2s.sqlite").exists()
    db = Database(pg_url, auto_upgrade=False)
    try:
        with db.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT status FROM jobs WHERE id = :j"), {"j": job_id}).scalar() == "done"
            )
            exported = conn.execute(
                text("SELECT count(*) FROM stage_runs WHERE stage = 'export' AND status = 'done'")
            ).scalar()
            assert exported == 4
    finally:
        db.dispose()


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


def test_second_run_on_the_same_output_writes_nothing_twice(first_run, simulator_env, pg_url):
    out = first_run[0]
    film, _, server = simulator_env
    spec = JobSpec(source=str(film), out=out, database_url=pg_url, max_segment_s=60, num_cpus=2)
    checks.check_rerun_writes_nothing_twice(out, server, lambda: run_job(spec)[1])


def test_profiles_commands_read_and_correct_the_memory(first_run, pg_url, tmp_path):
    checks.check_profiles_commands(pg_url, tmp_path / "graph.png")
