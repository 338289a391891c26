"""A budget that holds (issue 30): `--budget-usd` stops a job before its spend could pass the budget, the job
ends `paused` (exit 3) with `v2s status` saying what was spent and what to resume with, and `v2s resume
--budget-usd MORE` finishes it: the records byte for byte a fault-free run's, and the simulator asked exactly
as often as in that run (nothing paid twice). On SQLite and PostgreSQL. Also: a budget below one call pays
for nothing, and a budget that is not a positive number is refused in one line.

The simulator's default models are priced (gemini-3.8-flash, deepseek-flash). V2S_MAX_OUTPUT_TOKENS is
lowered to 4096 (above any answer the simulator gives) so that a call's worst case, which the budget reserves
before the call starts, is a few cents rather than the 32768-token default's twelve."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from typer.testing import CliRunner

from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import JobStatus, StageStore
from tests.support import e2e as checks
from tests.support.db import _truncate
from tests.support.films import sample_copy

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
SEGMENTS = 4  # the sample film cut at 60 s
JOB = "job-budget-e2e"  # records name their job: the budgeted job and the fault-free one share the id
OUTPUT_CAP = {"V2S_MAX_OUTPUT_TOKENS": "4096"}


def _calls(server: SimulatorServer) -> list:
    return [r for r in server.requests if r.endpoint in MODEL_CALLS]


def _records(out) -> dict[str, bytes]:
    """The shards' bytes with the output's own path (in every record's proxy_uri) written as OUT."""
    return {name: data.replace(str(out).encode(), b"OUT") for name, data in checks.shard_bytes(out).items()}


def _asked(requests) -> Counter:
    stage = {"plot_first": "plot", "plot_next": "plot"}
    return Counter((stage.get(r.stage, r.stage), r.start_s) for r in requests if r.start_s is not None)


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    path, screenplay = sample_copy(tmp_path_factory.mktemp("film"))
    return path, Screenplay.load(screenplay)


@pytest.fixture(scope="module")
def reference(film, tmp_path_factory):
    """The fault-free run: its records, its model calls and what it cost."""
    path, screenplay = film
    out = tmp_path_factory.mktemp("reference")
    with (
        SimulatorServer(screenplay) as server,
        checks.models_from(server, "sim-test-key-budget", **OUTPUT_CAP),
    ):
        run_job(JobSpec(source=str(path), out=out, max_segment_s=60, num_cpus=2), job_id=JOB)
        calls = _calls(server)
    db = Database(sqlite_url(out / "v2s.sqlite"))
    cost = StageStore(db).usage(JOB)["cost_usd"]
    db.dispose()
    assert len(calls) == 3 * SEGMENTS and cost > 0
    return {"records": _records(out), "calls": len(calls), "asked": _asked(calls), "cost": cost}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def budgeted(request, film, reference, tmp_path_factory):
    """`v2s run --budget-usd` at the fault-free cost, `v2s status`, then `v2s resume --budget-usd` with
    the budget the status suggests."""
    path, screenplay = film
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    if url is not None:
        db = Database(url, auto_upgrade=False)
        _truncate(db)
        db.dispose()
    out = tmp_path_factory.mktemp(f"budgeted-{request.param}")
    where = ["--database-url", url] if url else ["--out", str(out)]
    budget = round(reference["cost"], 4)  # all of it: the worst cases reserved stop it about half way
    runner = CliRunner()
    with (
        SimulatorServer(screenplay) as server,
        checks.models_from(server, "sim-test-key-budget", **OUTPUT_CAP),
    ):
        args = ["run", str(path), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
        args += ["--budget-usd", str(budget), "--job-id", JOB] + (["--database-url", url] if url else [])
        paused = runner.invoke(app, args)
        first_calls = _calls(server)
        records_at_pause = checks.records(out)
        db = Database(url or sqlite_url(out / "v2s.sqlite"))
        store = StageStore(db)
        state = {"status": store.job_status(JOB), "spent": store.usage(JOB)["cost_usd"]}
        shown = runner.invoke(app, ["status", JOB, *where], env={"COLUMNS": "300"})
        as_json = runner.invoke(app, ["status", JOB, *where, "--format", "json"])
        suggested = re.search(r"resume with --budget-usd ([0-9.]+)", shown.output)
        assert suggested, shown.output
        resumed = runner.invoke(app, ["resume", JOB, *where, "--budget-usd", suggested.group(1)])
        after = {"status": store.job_status(JOB), "spent": store.usage(JOB)["cost_usd"]}
        all_calls = _calls(server)
        db.dispose()
    return {
        "out": out,
        "budget": budget,
        "paused": paused,
        "state": state,
        "after": after,
        "status": shown.output,
        "json": as_json.stdout,
        "suggested": float(suggested.group(1)),
        "resumed": resumed,
        "first_calls": first_calls,
        "records_at_pause": records_at_pause,
        "calls": all_calls,
    }


def test_the_job_pauses_before_its_spend_could_pass_the_budget(budgeted, reference):
    paused, state = budgeted["paused"], budgeted["state"]
    assert paused.exit_code == 3, paused.output
    assert "paused at its budget" in paused.output and f"v2s resume {JOB} --budget-usd" in paused.output
    assert state["status"] == JobStatus.PAUSED
    assert 0 < state["spent"] <= budgeted["budget"]  # something was paid, and never more than the budget
    assert 0 < len(budgeted["first_calls"]) < reference["calls"]
    assert budgeted["records_at_pause"] == []  # the memory chain is not complete: no name is final yet


def test_status_says_the_budget_what_was_spent_and_what_to_resume_with(budgeted):
    shown = budgeted["status"]
    assert f"budget ${budgeted['budget']:g} spent ${budgeted['state']['spent']:.4f}" in shown
    assert budgeted["suggested"] > budgeted["state"]["spent"]
    (entry,) = __import__("json").loads(budgeted["json"])["budgets"]
    assert entry["paused"] is True and entry["limit_usd"] == budgeted["budget"]
    assert entry["resume_usd"] == budgeted["suggested"]


def test_resume_with_more_finishes_byte_for_byte_as_a_fault_free_run_paying_nothing_twice(
    budgeted, reference
):
    resumed = budgeted["resumed"]
    assert resumed.exit_code == 0, resumed.output
    assert budgeted["after"]["status"] == JobStatus.DONE
    assert _records(budgeted["out"]) == reference["records"]  # same ids, same bytes, 0 lost, 0 duplicated
    assert len(budgeted["calls"]) == reference["calls"]  # the simulator asked exactly as often
    assert _asked(budgeted["calls"]) == reference["asked"]  # …the same plots and scripts, each once
    assert budgeted["after"]["spent"] == pytest.approx(reference["cost"])
    checks.check_manifest_matches_the_files(budgeted["out"], expected_records=SEGMENTS)


def test_a_budget_below_one_call_pays_for_nothing(film, tmp_path):
    path, screenplay = film
    out = tmp_path / "out"
    with (
        SimulatorServer(screenplay) as server,
        checks.models_from(server, "sim-test-key-budget", **OUTPUT_CAP),
    ):
        args = ["run", str(path), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
        result = CliRunner().invoke(app, [*args, "--budget-usd", "0.001"])
        calls = _calls(server)
    assert result.exit_code == 3, result.output
    assert calls == []
    db = Database(sqlite_url(out / "v2s.sqlite"))
    store = StageStore(db)
    (job,) = store.jobs()
    assert job.status == JobStatus.PAUSED and store.usage(job.id)["cost_usd"] == 0
    db.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "film.mp4", "--out", "OUT", "--budget-usd", "0"],
        ["run", "film.mp4", "--out", "OUT", "--budget-usd", "-1"],
        ["run", "film.mp4", "--out", "OUT", "--segment-budget-usd", "nan"],
        ["resume", "job-x", "--out", "OUT", "--budget-usd", "-0.5"],
        ["plan", "film.mp4", "--out", "OUT", "--budget-usd", "0"],
        ["submit", "film.mp4", "--out", "OUT", "--address", "http://x:8265", "--budget-usd", "inf"],
    ],
)
def test_a_budget_that_is_not_a_positive_number_is_refused_in_one_line(args, tmp_path):
    args = [str(tmp_path / a) if a in ("OUT", "film.mp4") else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "positive number of US dollars" in lines[0], result.output
    assert not (tmp_path / "OUT").exists()  # refused before anything was made
