"""A database outage in the middle of a run is waited out, not fatal (#30).

The outage is real: the job's PostgreSQL is reached through a TCP relay that the test cuts while the model is
answering a plot (so that answer is paid while the database is away). Every part of the run waits: the workers
redo their step once the database is back, the driver's own calls wait, the shard writer waits; the answer
paid during the outage waits in the local journal. The run then ends as a fault-free run does: every record,
and one model call per stage and segment — nothing paid twice. An outage longer than the run's patience stops
the run in one line with the command that goes on, the job shows `interrupted`, and the resume pays nothing
twice either.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from annotator.simulator.behaviours import Behaviours
from annotator.simulator.server import SimulatorServer
from jobs.cli import EXIT_OUTAGE, app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from profiles_db.stages import JobStatus, StageStore
from tests.support import e2e as checks
from tests.support.db import _truncate
from tests.support.films import film_copy
from tests.support.play import small_screenplay
from tests.support.ray_session import SHARED_KEY
from tests.support.tcp_proxy import TcpRelay

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray, pytest.mark.postgres]
MODEL_STAGES = 3  # plot, script, distillation: a fault-free run makes one call each per segment


class CutDuringSecondPlot(Behaviours):
    """The database goes away while the second plot is being answered: that answer is paid during the outage."""

    def __init__(self, relay: TcpRelay) -> None:
        self.relay, self.plots, self.cut = relay, 0, threading.Event()

    def before_answer(self, request):
        if str(request.stage).startswith("plot"):
            self.plots += 1
            if self.plots == 2:
                self.relay.cut()
                self.cut.set()
        return None


@pytest.fixture
def relayed(postgres_url):
    """The session's PostgreSQL, emptied (another test's answers would be cached for this one), reached
    through a relay the test can cut."""
    emptied = Database(postgres_url, auto_upgrade=False)
    _truncate(emptied)
    emptied.dispose()
    target = make_url(postgres_url)
    relay = TcpRelay((target.host or "127.0.0.1", target.port or 5432))
    url = target.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    yield relay, url
    relay.close()


def _model_calls(server: SimulatorServer) -> int:
    return server.request_count()


def _spec(tmp_path, url: str, name: str) -> JobSpec:
    film = film_copy(small_screenplay(), tmp_path / "film" / f"{name}.mp4")
    return JobSpec(source=str(film), out=tmp_path / "out", database_url=url, max_segment_s=30, num_cpus=2)


def test_an_outage_mid_run_is_waited_out_and_nothing_is_paid_twice(relayed, tmp_path, monkeypatch):
    relay, url = relayed
    monkeypatch.setenv("V2S_OUTAGE_WAIT_S", "300")
    behaviour = CutDuringSecondPlot(relay)

    def end_the_outage() -> None:
        # once the run's parts have come back for the database several times (they are waiting), it returns
        if behaviour.cut.wait(timeout=600) and relay.wait_refused(6, timeout=600):
            relay.up()

    restorer = threading.Thread(target=end_the_outage, daemon=True)
    restorer.start()
    with (
        SimulatorServer(small_screenplay(), behaviours=behaviour) as server,
        checks.models_from(server, SHARED_KEY),
    ):
        job_id, summary = run_job(_spec(tmp_path, url, "outage"))
        calls = _model_calls(server)
    restorer.join(timeout=5)
    assert behaviour.cut.is_set() and relay.refused >= 6  # the outage happened, and was met
    db = Database(url, auto_upgrade=False)
    try:
        store = StageStore(db)
        segments = store.segment_count(job_id)
        assert store.job_status(job_id) == JobStatus.DONE
    finally:
        db.dispose()
    records = checks.records(tmp_path / "out")
    assert segments >= 2 and summary.records_written == segments == len(records)
    assert len({r["id"] for r in records}) == len(records)  # none twice
    assert (
        calls == MODEL_STAGES * segments
    )  # what a fault-free run pays: the outage's answer was not paid again


def test_an_outage_longer_than_the_patience_stops_in_one_line_and_the_resume_pays_nothing_twice(
    relayed, tmp_path, monkeypatch
):
    relay, url = relayed
    monkeypatch.setenv("V2S_OUTAGE_WAIT_S", "3")
    monkeypatch.setenv("V2S_OUTPUT_LEASE_S", "3")  # a run gone without a word shows as such soon
    behaviour = CutDuringSecondPlot(relay)
    spec = _spec(tmp_path, url, "long-outage")
    with (
        SimulatorServer(small_screenplay(), behaviours=behaviour) as server,
        checks.models_from(server, SHARED_KEY),
    ):
        run = CliRunner().invoke(
            app,
            ["run", spec.source, "--out", str(spec.out), "--database-url", url, "--max-segment-s", "30"],
            env={"COLUMNS": "400"},
        )
        assert run.exit_code == EXIT_OUTAGE, run.output
        said = [line for line in run.output.splitlines() if line.startswith("interrupted (")]
        assert said and "unreachable" in said[0] and "Traceback" not in run.output, run.output
        assert "v2s resume job-" in said[0] and "--database-url" in said[0], said
        job_id = said[0].split("v2s resume ", 1)[1].split()[0]
        paid_before = _model_calls(server)

        relay.up()
        db = Database(url, auto_upgrade=False)
        try:
            # the run could not mark the job as it stopped (no database); its lapsed lease says it is gone
            deadline, status = time.monotonic() + 60, None
            while status != JobStatus.INTERRUPTED and time.monotonic() < deadline:
                shown = CliRunner().invoke(app, ["status", job_id, "--database-url", url, "--format", "json"])
                status = json.loads(shown.output)["jobs"][0]["status"]
                time.sleep(
                    0.2
                )  # between polls of the condition (the lease lapses 3 s after its last renewal)
            assert status == JobStatus.INTERRUPTED

            resumed = CliRunner().invoke(
                app, ["resume", job_id, "--database-url", url], env={"COLUMNS": "400"}
            )
            assert resumed.exit_code == 0, resumed.output
            segments = StageStore(db).segment_count(job_id)
            assert StageStore(db).job_status(job_id) == JobStatus.DONE
        finally:
            db.dispose()
        assert paid_before >= 2 and _model_calls(server) == MODEL_STAGES * segments
    records = checks.records(spec.out)
    assert len(records) == segments and len({r["id"] for r in records}) == segments
