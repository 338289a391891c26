"""The driver is killed (SIGKILL, with its embedded Ray) while provider batches are open; `v2s resume JOB`
polls the batches the killed run submitted instead of submitting (and paying for) them again."""

from __future__ import annotations

import os
import signal
import time

import pytest

from annotator.simulator.batch_store import BatchPlay
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from tests.jobs.test_resume import _cli, _db_rows
from tests.support import e2e as checks
from tests.support.films import sample_copy

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]
SEGMENTS = 2  # the sample film cut at 120 s


def test_a_run_killed_with_open_batches_resumes_without_submitting_them_again(tmp_path):
    film, screenplay_path = sample_copy(tmp_path / "film")
    out = tmp_path / "out"
    db = out / "v2s.sqlite"
    # each batch takes a few seconds: long enough to kill the driver while one is open
    play = BatchPlay(pending_s=1.5, running_s=1.5)
    with SimulatorServer(Screenplay.load(screenplay_path), batches=play) as server:
        env = {
            **os.environ,
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-test-key-batch-resume",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-test-key-batch-resume",
            "V2S_PLOT_TIER": "batch",
            "V2S_SCRIPT_TIER": "batch",
            "V2S_DISTILL_TIER": "batch",
            "V2S_BATCH_POLL_S": "0.3",
            "V2S_LEASE_S": "4",  # the dead workers' leases run out quickly
        }
        run = _cli("run", str(film), "--out", str(out), "--max-segment-s", "120", "--num-cpus", "2", env=env)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # the second plot wave is open: one batch paid, not yet read
                waiting = _db_rows(db, "SELECT name FROM model_batches WHERE state = 'open' AND wave = 2")
                if waiting:
                    break
                assert run.poll() is None, run.stdout.read()
                time.sleep(0.1)
            else:
                pytest.fail("no batch was ever open")
        finally:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        open_at_kill = {
            name for (name,) in _db_rows(db, "SELECT name FROM model_batches WHERE state = 'open'")
        }
        created_at_kill = server.batches.created
        (job_id,) = _db_rows(db, "SELECT id FROM jobs")[0]

        resume = _cli("resume", job_id, "--out", str(out), env=env)
        output, _ = resume.communicate(timeout=300)
        assert resume.returncode == 0, output
        created = server.batches.created
        batches = list(server.batches.batches.values())

    recorded = {name for (name,) in _db_rows(db, "SELECT name FROM model_batches")}
    # every batch the provider created is recorded once, and the ones open at the kill were read, not resent
    assert len(recorded) == created > created_at_kill
    states = dict(_db_rows(db, "SELECT name, state FROM model_batches"))
    assert open_at_kill and {states[name] for name in open_at_kill} == {"done"}
    held: dict[tuple[str, str], int] = {}
    for batch in batches:  # no request of a stage was ever in two batches (no item failed in this run)
        stage = (batch.display_name or (batch.metadata or {}).get("v2s", "")).split("-")[1]
        for item in batch.items:
            held[(stage, item.key)] = held.get((stage, item.key), 0) + 1
    assert set(held.values()) == {1} and len(held) == 3 * SEGMENTS
    found = checks.records(out)
    assert len({r["id"] for r in found}) == len(found) == SEGMENTS
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
    assert _db_rows(db, f"SELECT status FROM jobs WHERE id = '{job_id}'") == [("done",)]
