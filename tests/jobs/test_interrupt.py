"""Ctrl-C during a run (#30): the first stops new work and lets the calls in flight finish, so what they were
paid for is kept; the job ends `interrupted`, the run exits 130 naming the command that goes on, and the
resume pays for nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from annotator.simulator.behaviours import Behaviours
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from jobs.control import resume_job
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import JobStatus, StageStore
from tests.support import e2e as checks
from tests.support.films import film_copy
from tests.support.play import small_screenplay

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
ROOT = Path(__file__).resolve().parents[2]


class HoldFirstPlot(Behaviours):
    """The first plot call waits, on the wire, until the test lets it answer."""

    def __init__(self) -> None:
        self.arrived, self.release = threading.Event(), threading.Event()

    def before_answer(self, request):
        if str(request.stage).startswith("plot") and not self.arrived.is_set():
            self.arrived.set()
            self.release.wait(timeout=120)
        return None


def test_a_ctrl_c_lets_the_paid_calls_in_flight_finish_and_the_resume_pays_nothing_twice(tmp_path):
    screenplay = small_screenplay()
    film = film_copy(screenplay, tmp_path / "film" / "interrupted.mp4")
    out = tmp_path / "out"
    hold = HoldFirstPlot()
    with SimulatorServer(screenplay, behaviours=hold) as server:
        env = {
            **os.environ,
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-test-key-interrupt",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-test-key-interrupt",
        }
        args = ["run", str(film), "--out", str(out), "--max-segment-s", "30", "--num-cpus", "2"]
        run = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert hold.arrived.wait(timeout=300), "the first plot call never came"
            os.kill(run.pid, signal.SIGINT)  # Ctrl-C while that call is on the wire
            hold.release.set()
            output, _ = run.communicate(timeout=300)
        finally:
            hold.release.set()
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
        assert run.returncode == 130, output
        said = [line for line in output.splitlines() if line.startswith("interrupted (")]
        assert said and "v2s resume job-" in said[0] and f"--out {out}" in said[0], output
        job_id = said[0].split("v2s resume ", 1)[1].split()[0]
        db = Database(sqlite_url(out / "v2s.sqlite"))
        store = StageStore(db)
        assert store.job_status(job_id) == JobStatus.INTERRUPTED
        paid_before = [r for r in server.requests if r.endpoint in MODEL_CALLS]
        assert len(paid_before) == 1  # the held plot: answered, and nothing started after the interrupt

        with checks.models_from(server, "sim-test-key-interrupt"):
            _, summary = resume_job(db, job_id)
        calls = [r for r in server.requests if r.endpoint in MODEL_CALLS]
        assert store.job_status(job_id) == JobStatus.DONE and summary.records_written == summary.segments
        assert len(calls) == 3 * summary.segments  # each stage of each segment paid once: the held plot too
        db.dispose()
