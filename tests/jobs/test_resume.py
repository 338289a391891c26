"""The driver is killed (SIGKILL, with its embedded Ray) in the middle of a job; `v2s resume JOB` finishes it:
no lost and no duplicate record, and no model call repeated for a stage that was already done."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from tests.support import e2e as checks
from tests.support.films import sample_copy

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]
ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = 4  # the sample film cut at 60 s


class SlowModel(Behaviours):
    """Every model call takes a while, so the job lasts long enough to be killed half way."""

    def before_answer(self, request: RequestInfo) -> Fault | None:
        return Fault(delay_s=1.0)


def _stage_key(stage: str | None) -> str | None:
    return "plot" if stage in ("plot_first", "plot_next") else stage


def _db_rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


def _settled_count(server: SimulatorServer, quiet_s: float = 3.0) -> int:
    """The number of requests once calls already on the wire when the driver died have landed in the log."""
    count, since = len(server.requests), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        if len(server.requests) != count:
            count, since = len(server.requests), time.monotonic()
    return count


def _cli(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the driver AND its Ray can be killed together
    )


def test_resume_after_the_driver_is_killed(tmp_path):
    film, screenplay_path = sample_copy(tmp_path / "film")
    out = tmp_path / "out"
    db = out / "v2s.sqlite"
    with SimulatorServer(Screenplay.load(screenplay_path), behaviours=SlowModel()) as server:
        env = {
            **os.environ,
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-test-key-resume",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-test-key-resume",
            "V2S_LEASE_S": "4",  # the dead workers' leases run out quickly
        }
        run = _cli("run", str(film), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2", env=env)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # wait until some stages are done, but not all of them
                done = _db_rows(db, "SELECT count(*) FROM stage_runs WHERE status = 'done'")
                if done and done[0][0] >= 3:
                    break
                assert run.poll() is None, run.stdout.read()
                time.sleep(0.2)
            else:
                pytest.fail("the job never got going")
        finally:
            os.killpg(run.pid, signal.SIGKILL)  # the driver machine dies: driver, raylet and workers
            run.wait()
        calls_at_kill = _settled_count(server)
        done_at_kill = _db_rows(
            db,
            "SELECT r.stage, s.start_s FROM stage_runs r JOIN segments s ON s.id = r.segment_id "
            "WHERE r.status = 'done'",
        )
        (job_id,) = _db_rows(db, "SELECT id FROM jobs")[0]
        exported = _db_rows(db, "SELECT count(*) FROM stage_runs WHERE stage='export' AND status='done'")
        assert exported[0][0] < SEGMENTS, "the job was killed too late to test anything"

        resume = _cli("resume", job_id, "--out", str(out), env=env)
        output, _ = resume.communicate(timeout=300)
        assert resume.returncode == 0, output

        after = [r for r in server.requests[calls_at_kill:] if r.endpoint in MODEL_CALLS]
    # no repeated model call for a stage already done (plot and script calls show their segment's range)
    repeated = [
        (stage, start)
        for stage, start in done_at_kill
        for r in after
        if _stage_key(r.stage) == stage and r.start_s is not None and abs(r.start_s - start) < 0.5
    ]
    assert repeated == []
    done_distills = sum(1 for stage, _ in done_at_kill if stage == "distill")
    assert Counter(_stage_key(r.stage) for r in after)["distill"] == SEGMENTS - done_distills

    # every record exactly once, the manifest describing exactly the closed shards
    found = checks.records(out)
    keys = [(r["video"]["video_id"], r["video"]["segment_index"]) for r in found]
    assert len(keys) == len(set(keys)) == SEGMENTS
    assert len({r["id"] for r in found}) == SEGMENTS
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
    assert _db_rows(db, f"SELECT status FROM jobs WHERE id = '{job_id}'") == [("done",)]
