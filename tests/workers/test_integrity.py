"""Integrity under faults (docs/reliability.md), on SQLite and PostgreSQL, with the simulator's fault rules.

- The memory chain: the model endpoint is down when segment 2's plot is asked (the sample film names Elias
  Crane in segment 3, so a chain that skipped segment 2 and applied it last would merge or mislabel people).
  The scope waits, nothing is exported, and `resume` finishes it: every record identical to a fault-free run's
  (ids, canonical characters, the name in every event), 0 lost, 0 duplicate, 0 re-paid. The same with the
  driver SIGKILLed while that plot call hangs.
- With the output folder deleted and the database elsewhere (PostgreSQL), a rerun brings every record back,
  byte for byte.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.scenarios import FaultRule, Scenario
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from jobs.cli import app
from jobs.control import resume_job
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from profiles_db.stages import StageStore
from tests.support import e2e as checks
from tests.support.db import _truncate
from tests.support.films import sample_copy

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = 4  # the sample film cut at 60 s; Elias Crane is named in segment 3


def _stage(stage) -> str:
    value = getattr(stage, "value", stage)
    return "plot" if value in ("plot_first", "plot_next") else value


def _segment(request) -> int | None:
    """The segment a logged request showed (segments start near 0, 60, 120, 180 s); None without a video."""
    return None if request.start_s is None else round(request.start_s / 60) + 1


@contextmanager
def _environment(server: SimulatorServer, **extra: str):
    saved = dict(os.environ)
    os.environ.update(
        {
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-test-key-integrity",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-test-key-integrity",
            **extra,
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def identity_view(out) -> list[tuple]:
    """What a fault must not change: per record (in segment order), its id, its canonical characters and the
    character (name and canonical code) of every event."""
    view = []
    for r in sorted(checks.records(out), key=lambda r: r["video"]["segment_index"]):
        characters = sorted((c["code"], c["name"], c["status"]) for c in r["characters"])
        events = [
            (e["timestamp"], e["character"], e.get("character_id"))
            for s in r["script"]["script"]
            for e in s["events"]
        ]
        view.append((r["id"], r["video"]["segment_index"], characters, events))
    return view


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    film, screenplay_path = sample_copy(tmp_path_factory.mktemp("film"))
    return film, Screenplay.load(screenplay_path)


@pytest.fixture(scope="module")
def reference(film, tmp_path_factory):
    """A fault-free run (SQLite, its database inside the output folder)."""
    path, screenplay = film
    out = tmp_path_factory.mktemp("reference")
    with SimulatorServer(screenplay) as server, _environment(server):
        job_id, summary = run_job(JobSpec(source=str(path), out=out, max_segment_s=60, num_cpus=2))
    assert summary.records_written == SEGMENTS and not summary.stage_failures
    return out, job_id, identity_view(out)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


def _fresh(url: str | None) -> None:
    if url is not None:
        db = Database(url, auto_upgrade=False)
        _truncate(db)
        db.dispose()


@pytest.fixture(scope="module")
def chain_fault(film, database_url, tmp_path_factory):
    """Segment 2's plot hits an endpoint that is down (503, no retry left), then `resume` runs once it is up."""
    path, screenplay = film
    _fresh(database_url)
    out = tmp_path_factory.mktemp("chain-fault")
    down = Scenario(rules=[FaultRule(kind="unavailable", stage="plot", segment=2, times=1)])
    spec = JobSpec(source=str(path), out=out, database_url=database_url, max_segment_s=60, num_cpus=2)
    with (
        SimulatorServer(screenplay, behaviours=down) as server,
        _environment(server, V2S_CALL_ATTEMPTS="1", V2S_STAGE_ATTEMPTS="1"),
    ):
        job_id, first = run_job(spec)
        first_requests = list(server.requests)
        records_after_fault = checks.records(out)
        db = Database(spec.db_url())
        status_after_fault = StageStore(db).job_status(job_id)
        shown = CliRunner().invoke(
            app, ["status", job_id, "--database-url", spec.db_url()], env={"COLUMNS": "300"}
        )
        _, resumed = resume_job(db, job_id)
        resume_requests = server.requests[len(first_requests) :]
        status_after_resume = StageStore(db).job_status(job_id)
        db.dispose()
    return {
        "out": out,
        "first": first,
        "resumed": resumed,
        "first_requests": [r for r in first_requests if r.endpoint in MODEL_CALLS],
        "resume_requests": [r for r in resume_requests if r.endpoint in MODEL_CALLS],
        "statuses": (status_after_fault, status_after_resume),
        "records_after_fault": records_after_fault,
        "status_output": shown.output,
    }


def test_a_failed_plot_stops_its_chain_and_nothing_is_exported(chain_fault):
    first = chain_fault["first"]
    (block,) = first.blocked_chains.values()
    assert block["waiting"] == 2  # segments 3 and 4 wait
    assert first.records_written == 0  # names are not final while the chain has a hole
    plots = [(_segment(r), r.status) for r in chain_fault["first_requests"] if _stage(r.stage) == "plot"]
    # segment 1 answered, segment 2 refused (a 503 is logged before its clip is read, so with no range);
    # segments 3 and 4 were never reasoned over a memory without segment 2
    assert plots == [(1, 200), (None, 503)]
    assert chain_fault["records_after_fault"] == []
    shown = chain_fault["status_output"]  # the scope waits, visibly, and says how to go on
    assert "memory chain waits" in shown and "segment 2" in shown and "2 later plots" in shown
    assert "--give-up" in shown
    assert chain_fault["statuses"][0] == "failed"  # not "done": a stage failed and nothing was written


def test_resume_continues_the_chain_in_order_and_matches_a_fault_free_run(chain_fault, reference):
    resumed, out = chain_fault["resumed"], chain_fault["out"]
    assert resumed.stage_failures == [] and resumed.blocked_chains == {}
    assert resumed.records_written == SEGMENTS
    assert identity_view(out) == reference[2]  # same ids, same canonical characters, same names everywhere
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
    assert chain_fault["statuses"][1] == "done"
    # 0 re-paid: resume asked only what the first run had not got (plots 2-4; script/distill 2-4, and 1's
    # distill or script only if the first run had not finished them)
    asked_first = Counter((_stage(r.stage), _segment(r)) for r in chain_fault["first_requests"])
    asked_again = Counter((_stage(r.stage), _segment(r)) for r in chain_fault["resume_requests"])
    assert [k for k in asked_again if k[0] == "plot"] == [("plot", 2), ("plot", 3), ("plot", 4)]
    for key in asked_again:
        if key[0] != "distill":  # distill calls show no video, so no segment index to compare
            assert key not in asked_first or key == ("plot", 2), key


class _HangOnce(Behaviours):
    """The first call of `stage` for `segment` hangs (the endpoint stopped answering); `arrived` says it came."""

    def __init__(self, stage: str, segment: int) -> None:
        self.stage, self.segment = stage, segment
        self.arrived = threading.Event()

    def before_answer(self, request: RequestInfo) -> Fault | None:
        mine = _stage(request.stage) == self.stage and request.segment_index == self.segment
        if mine and not self.arrived.is_set():
            self.arrived.set()
            return Fault(delay_s=30)
        return None


@pytest.fixture(scope="module")
def killed_chain(film, database_url, tmp_path_factory):
    """The driver is SIGKILLed while segment 2's plot call hangs; `resume` finishes the job."""
    path, screenplay = film
    _fresh(database_url)
    out = tmp_path_factory.mktemp("killed-chain")
    hang = _HangOnce(stage="plot", segment=2)
    with SimulatorServer(screenplay, behaviours=hang) as server, _environment(server, V2S_LEASE_S="4"):
        args = ["run", str(path), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
        if database_url:
            args += ["--database-url", database_url]
        run = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *args],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 240
            while not hang.arrived.is_set():  # the hanging call is on the wire
                assert run.poll() is None, run.stdout.read()
                assert time.monotonic() < deadline, "segment 2's plot was never asked"
                time.sleep(0.2)
            time.sleep(1.0)
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        calls_at_kill = len(server.requests)
        spec = JobSpec(source=str(path), out=out, database_url=database_url, max_segment_s=60)
        db = Database(spec.db_url())
        job_id = StageStore(db).latest_job().id
        _, resumed = resume_job(db, job_id)
        after = [r for r in server.requests[calls_at_kill:] if r.endpoint in MODEL_CALLS]
        before = [r for r in server.requests[:calls_at_kill] if r.endpoint in MODEL_CALLS]
        db.dispose()
    return {"out": out, "resumed": resumed, "before": before, "after": after, "spec": spec}


def test_a_kill_in_the_middle_of_the_chain_then_resume_matches_a_fault_free_run(killed_chain, reference):
    out, resumed = killed_chain["out"], killed_chain["resumed"]
    assert resumed.stage_failures == [] and resumed.records_written == SEGMENTS
    assert identity_view(out) == reference[2]
    ids = [r["id"] for r in checks.records(out)]
    assert len(ids) == len(set(ids)) == SEGMENTS
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
    # the server logs a request once answered: the hanging call of segment 2 is not among those before the kill
    plots_before = [_segment(r) for r in killed_chain["before"] if _stage(r.stage) == "plot"]
    assert plots_before == [1]  # nothing after the hanging segment was reasoned before the kill
    plots_after = [_segment(r) for r in killed_chain["after"] if _stage(r.stage) == "plot"]
    # segment 2 asked again (the hung call may also land in the log, answered to nobody), then the chain in
    # order; plot 1 is not paid again
    assert [s for s in plots_after if s != 2] == [3, 4] and 1 <= plots_after.count(2) <= 2


def test_a_deleted_output_folder_comes_back_from_the_database(killed_chain, database_url, film):
    if database_url is None:
        pytest.skip("the default database lives inside the output folder: deleting it deletes the job")
    out, spec = killed_chain["out"], killed_chain["spec"]
    before = checks.shard_bytes(out)
    manifest = checks.read_bytes(out, "manifest.json")
    shutil.rmtree(out)
    with SimulatorServer(film[1]) as server, _environment(server):
        calls = server.request_count()
        _, summary = run_job(spec.model_copy(update={"num_cpus": 2}))
        assert server.request_count() == calls  # rebuilt from the database: no model call
    assert checks.shard_bytes(out) == before and checks.read_bytes(out, "manifest.json") == manifest
    assert summary.repairs and all("rebuilt from the database" in r for r in summary.repairs if "part-" in r)
    for record in checks.records(out):  # the proxies the records point to are back too
        assert (Path(out) / record["video"]["proxy_uri"]).is_file()


# -- damaged outputs: repaired with every record back, or refused with a named reason -------------------
def _copy(reference, tmp_path) -> Path:
    """A copy of the fault-free output (its database inside: the copy is an output of its own)."""
    out = tmp_path / "out"
    shutil.copytree(reference[0], out)
    return out


def _verify(out: Path, *flags: str):
    return CliRunner().invoke(app, ["verify", str(out), *flags], env={"COLUMNS": "200"})


def _damage(kind: str, out: Path) -> None:
    shard = out / "shards" / "part-00000.jsonl"
    data = shard.read_bytes()
    if kind == "truncated":
        shard.write_bytes(data[: len(data) // 2])
    elif kind == "flipped":
        middle = len(data) // 2
        shard.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])
    elif kind == "deleted":
        shard.unlink()
    elif kind == "forged-manifest":  # valid JSON, same byte size, wrong counts and sha256
        text = (out / "manifest.json").read_text()
        forged = text.replace('"records": 4', '"records": 9').replace('"sha256": "', '"sha256": "0', 1)
        forged = forged.replace(
            forged[forged.index('"sha256": "0') + 12 : forged.index('"sha256": "0') + 13], "", 1
        )
        assert len(forged) == len(text) and forged != text
        (out / "manifest.json").write_text(forged)


@pytest.mark.parametrize("kind", ["truncated", "flipped", "deleted", "forged-manifest"])
def test_a_damaged_output_is_found_and_rebuilt_byte_for_byte(reference, tmp_path, kind):
    out = _copy(reference, tmp_path)
    original = checks.shard_bytes(out), checks.read_bytes(out, "manifest.json")
    _damage(kind, out)
    found = _verify(out)  # looks, changes nothing
    assert found.exit_code == 1, found.output
    assert ("manifest.json" if kind == "forged-manifest" else "part-00000.jsonl") in found.output
    repaired = _verify(out, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert (checks.shard_bytes(out), checks.read_bytes(out, "manifest.json")) == original
    assert _verify(out).exit_code == 0  # clean now


def test_a_rerun_over_a_truncated_shard_repairs_it_before_writing_or_skipping(reference, film, tmp_path):
    out = _copy(reference, tmp_path)
    original = checks.shard_bytes(out), checks.read_bytes(out, "manifest.json")
    _damage("truncated", out)
    with SimulatorServer(film[1]) as server, _environment(server):
        _, summary = run_job(JobSpec(source=str(film[0]), out=out, max_segment_s=60, num_cpus=2))
        assert server.request_count() == 0
    assert summary.records_written == 0 and any("truncated" in r for r in summary.repairs)
    assert (checks.shard_bytes(out), checks.read_bytes(out, "manifest.json")) == original


def test_what_the_database_cannot_rebuild_is_refused_by_name(reference, film, tmp_path):
    from sqlalchemy import delete

    from profiles_db.models import ShardRecord
    from workers.verify import OutputDamaged

    # a shard the database never wrote (another database's output, or put there by hand)
    out = _copy(reference, tmp_path / "foreign")
    (out / "shards" / "part-00007.jsonl").write_text('{"id": "not-ours"}\n')
    refused = _verify(out, "--repair")
    assert refused.exit_code == 2 and "part-00007.jsonl" in refused.output
    assert "not written by this database" in refused.output
    # a damaged shard whose stored lines are gone
    out = _copy(reference, tmp_path / "lost")
    _damage("flipped", out)
    db = Database(f"sqlite:///{out / 'v2s.sqlite'}")
    with db.transaction() as s:
        s.execute(delete(ShardRecord))
    db.dispose()
    with SimulatorServer(film[1]) as server, _environment(server), pytest.raises(OutputDamaged) as info:
        run_job(JobSpec(source=str(film[0]), out=out, max_segment_s=60, num_cpus=2))
    assert "part-00000.jsonl" in str(info.value) and "cannot be rebuilt" in str(info.value)
    assert StageStore(Database(f"sqlite:///{out / 'v2s.sqlite'}")).latest_job().status != "running"


# -- one run per output ----------------------------------------------------------------------------------
class _Slow(Behaviours):
    def before_answer(self, request: RequestInfo) -> Fault | None:
        return Fault(delay_s=1.0)


def test_two_runs_on_one_output_one_runs_the_other_is_refused_at_once(film, tmp_path):
    out = tmp_path / "out"
    with SimulatorServer(film[1], behaviours=_Slow()) as server, _environment(server):
        args = [sys.executable, "-m", "jobs.cli", "run", str(film[0]), "--out", str(out)]
        args += ["--max-segment-s", "60", "--num-cpus", "2"]
        runs = [
            subprocess.Popen(
                args,
                cwd=ROOT,
                env=dict(os.environ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        started = time.monotonic()
        ended: dict[int, float] = {}
        while len(ended) < len(runs) and time.monotonic() - started < 300:
            for n, run in enumerate(runs):
                if n not in ended and run.poll() is not None:
                    ended[n] = time.monotonic() - started
            time.sleep(0.1)
        finished = [(run.returncode, run.communicate()[0], ended.get(n)) for n, run in enumerate(runs)]
    codes = sorted(code for code, _, _ in finished)
    assert codes == [0, 2], [o for _, o, _ in finished]
    refused = next(f for f in finished if f[0] == 2)
    assert "is being written by job" in refused[1] and "one run per output" in refused[1]
    assert "Traceback" not in refused[1]
    winner = next(f for f in finished if f[0] == 0)
    assert refused[2] < winner[2] / 2  # refused at once, not after waiting for the other run
    ids = [r["id"] for r in checks.records(out)]
    assert len(ids) == len(set(ids)) == SEGMENTS
    assert not list(out.rglob("*.partial*"))


# -- deterministic blocks and giving up ------------------------------------------------------------------
def test_a_blocked_plot_is_not_resent_by_resume_and_a_give_up_exports_with_the_gap(film, tmp_path):
    path, screenplay = film
    out = tmp_path / "out"
    blocked = Scenario(rules=[FaultRule(kind="blocked", stage="plot", segment=2)])  # SAFETY, every time
    spec = JobSpec(source=str(path), out=out, max_segment_s=60, num_cpus=2)
    with SimulatorServer(screenplay, behaviours=blocked) as server, _environment(server):
        job_id, first = run_job(spec)
        assert first.records_written == 0 and first.blocked_chains
        db = Database(spec.db_url())
        store = StageStore(db)
        (segment_id, status, outcome) = store.chain(next(iter(first.blocked_chains)))[1]
        assert (status, outcome) == ("failed", "blocked")
        plot_calls = server.request_count("plot_next") + server.request_count("plot_first")
        _, again = resume_job(db, job_id)  # the default: a deterministic block is not sent again
        assert server.request_count("plot_next") + server.request_count("plot_first") == plot_calls
        assert again.records_written == 0 and again.blocked_chains
        _, given_up = resume_job(db, job_id, give_up=[str(segment_id)])
        assert given_up.records_written == SEGMENTS - 1 and given_up.blocked_chains == {}
        assert store.job_status(job_id) == "done"  # every stage done or rejected (the given-up plot)
        db.dispose()
    found = checks.records(out)
    assert sorted(r["video"]["segment_index"] for r in found) == [1, 3, 4]
    gap = [{"video_id": found[0]["video"]["video_id"], "segment_index": 2}]
    assert all(r["meta"]["memory_gaps"] == gap for r in found)
