"""Jobs whose sources share a video, on one database (#30): each output gets every record of its source, the
second job pays for nothing the first already paid, each job's cost counts what it paid, and the first job
keeps the video in its status."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import JobStatus, StageStore
from tests.support import e2e as checks
from tests.support.films import film_copy
from tests.support.play import small_screenplay
from tests.support.ray_session import SHARED_KEY

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]


def test_a_video_two_jobs_share_is_in_both_outputs_and_paid_once(tmp_path):
    screenplay = small_screenplay()
    film = film_copy(screenplay, tmp_path / "films" / "shared episode.mp4")
    database = sqlite_url(tmp_path / "db" / "jobs.sqlite")
    (tmp_path / "db").mkdir()
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    with SimulatorServer(screenplay) as server, checks.models_from(server, SHARED_KEY):
        first, done_first = run_job(
            JobSpec(source=str(film), out=first_out, database_url=database, max_segment_s=30, num_cpus=2)
        )
        paid_first = server.request_count()
        second, done_second = run_job(
            JobSpec(source=str(film), out=second_out, database_url=database, max_segment_s=30, num_cpus=2)
        )
        assert server.request_count() == paid_first  # the second job asked no model anything
    first_records, second_records = checks.records(first_out), checks.records(second_out)
    assert first_records and len(second_records) == len(first_records) == done_second.records_written
    assert sorted(r["id"] for r in second_records) == sorted(r["id"] for r in first_records)
    assert all((second_out / r["video"]["proxy_uri"]).is_file() for r in second_records)  # its own proxies

    db = Database(database)
    store = StageStore(db)
    assert store.job_status(first) == store.job_status(second) == JobStatus.DONE
    assert (
        store.usage(first)["cost_usd"] > 0 and store.usage(second)["cost_usd"] == 0
    )  # paid once, by the first
    assert [uri for uri, _, _ in store.videos(first)] == [str(film)]  # the first job did not lose its video
    assert [uri for uri, _, _ in store.videos(second)] == [str(film)]
    db.dispose()
    for out in (first_out, second_out):
        verified = CliRunner().invoke(app, ["verify", str(out), "--database-url", database])
        assert verified.exit_code == 0, verified.output
    assert done_first.records_written == len(first_records)
