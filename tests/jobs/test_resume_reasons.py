"""`v2s resume --only-reason`: an unknown reason is refused, and a segment the quality gates rejected can be
retried on purpose (`--only-reason rejected`) without paying again for anything else."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.film import render_sample
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from profiles_db.stages import StageStore
from tests.support import e2e as checks

pytestmark = pytest.mark.shared_ray  # its jobs run on the session's one Ray (tests/support/ray_session.py)

SEGMENTS = 4  # the sample film cut at 60 s
# Schema-valid, but the same event five times in a row: the quality gates reject it as a degenerate loop.
LOOP = json.dumps(
    {
        "script": [
            {
                "scene_id": 1,
                "location": "pier",
                "events": [
                    {"timestamp": f"00:{t:02d}", "character": "Environment", "action": "waves"}
                    for t in range(1, 6)
                ],
            }
        ]
    }
)


def _stage(request: RequestInfo) -> str:
    return getattr(request.stage, "value", request.stage)


class OneLoopingScript(Behaviours):
    """The first script asked for segment 2 comes back as a degenerate loop; every other answer is honest."""

    def __init__(self) -> None:
        self._lock, self._played = threading.Lock(), False

    def before_answer(self, request: RequestInfo) -> Fault | None:
        if _stage(request) != "script" or request.start_s is None or round(request.start_s / 60) + 1 != 2:
            return None
        with self._lock:
            if self._played:
                return None
            self._played = True
        return Fault(answer_text=LOOP)


def test_an_unknown_reason_is_refused_with_the_valid_ones(tmp_path):
    result = CliRunner().invoke(app, ["resume", "some-job", "--out", str(tmp_path), "--only-reason", "bogus"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "bogus" in lines[0] and "rejected" in lines[0] and "server_error" in lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def database_url(job_database_url) -> str | None:
    return job_database_url


@pytest.mark.slow
def test_a_gate_reject_is_retried_only_when_asked_and_nothing_else_is_paid_again(tmp_path, database_url):
    film, screenplay_path = render_sample(tmp_path / "film")
    out = tmp_path / "out"
    spec = JobSpec(source=str(film), out=out, database_url=database_url, max_segment_s=60, num_cpus=2)
    with (
        SimulatorServer(Screenplay.load(screenplay_path), behaviours=OneLoopingScript()) as server,
        checks.models_from(server, "sim-test-key-reasons"),
    ):

        def calls() -> list[RequestInfo]:
            return [r for r in server.requests if r.endpoint in MODEL_CALLS]

        job_id, first = run_job(spec)
        assert first.records_written == SEGMENTS - 1
        assert len(calls()) == 3 * SEGMENTS - 1  # segment 2 got no distillation
        db = Database(spec.db_url())
        assert StageStore(db).job_status(job_id) == "done"  # a gate reject is a final state

        url = ["--database-url", spec.db_url()]
        plain = CliRunner().invoke(app, ["resume", job_id, *url])  # the default leaves gate rejects alone
        assert plain.exit_code == 0, plain.output
        assert len(calls()) == 3 * SEGMENTS - 1

        before = len(calls())
        retried = CliRunner().invoke(app, ["resume", job_id, *url, "--only-reason", "rejected"])
        assert retried.exit_code == 0, retried.output
        again = calls()[before:]
        assert sorted(_stage(r) for r in again) == ["distill", "script"]  # segment 2's, and nothing else
        assert round(next(r for r in again if _stage(r) == "script").start_s / 60) + 1 == 2
        assert StageStore(db).job_status(job_id) == "done"
        db.dispose()
    found = checks.records(out)
    keys = [(r["video"]["video_id"], r["video"]["segment_index"]) for r in found]
    assert sorted(i for _, i in keys) == [1, 2, 3, 4] and len(set(keys)) == SEGMENTS
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
    assert not list(Path(out).rglob("*.partial*"))
