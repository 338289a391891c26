"""A source that changed under the same name is a new version of its video (docs/reliability.md).

The sample film is annotated once with segment 4's script failing (so that version is left unfinished), then
re-encoded in place (same name, other bytes and mtime) and run again on the same output, on SQLite and
PostgreSQL. The old version's open stages are closed, its 3 records leave the shards and the manifest (their
lines kept in `superseded_records`), the new version gets its 4 records (at most 12 model calls), the job is `done`,
an export has 4 rows, and `v2s status` says what changed.
"""

from __future__ import annotations

import json

import av
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from annotator.simulator.film import render_sample
from annotator.simulator.scenarios import FaultRule, Scenario
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import MODEL_CALLS, SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from jobs.sources import video_id
from profiles_db.db import Database
from profiles_db.models import StageRun, SupersededRecord, Video
from profiles_db.stages import StageStore
from tests.support import e2e as checks

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
SEGMENTS = 4


@pytest.fixture
def database_url(job_database_url) -> str | None:
    return job_database_url


def _reencode_in_place(film) -> None:
    """Same frames and sound in a new container with other metadata (PyAV, which the engine's splitter uses
    too): other bytes, size and mtime under the same name, as a re-mux or a re-download gives."""
    temp = film.with_name("reencoded.mp4")
    with av.open(str(film)) as src, av.open(str(temp), "w", format="mp4") as dst:
        dst.metadata["comment"] = "version 2"
        streams = {
            s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")
        }
        for packet in src.demux(*[s for s in src.streams if s.index in streams]):
            if packet.dts is None:  # the demuxer's flush packets
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    temp.replace(film)


def test_a_source_changed_under_the_same_name_is_a_new_version(tmp_path, database_url):
    film, screenplay_path = render_sample(tmp_path / "film")
    screenplay = Screenplay.load(screenplay_path)
    out = tmp_path / "out"
    spec = JobSpec(source=str(film), out=out, database_url=database_url, max_segment_s=60, num_cpus=2)
    script_down = Scenario(rules=[FaultRule(kind="server_error", stage="script", segment=4)])
    with (
        SimulatorServer(screenplay, behaviours=script_down) as server,
        checks.models_from(server, "sim-test-key-versions", V2S_CALL_ATTEMPTS="1", V2S_STAGE_ATTEMPTS="1"),
    ):
        _, first = run_job(spec)
    assert first.records_written == SEGMENTS - 1
    old_id = video_id(film)
    old_records = {r["id"] for r in checks.records(out)}

    _reencode_in_place(film)
    new_id = video_id(film)
    assert new_id != old_id
    with SimulatorServer(screenplay) as server, checks.models_from(server, "sim-test-key-versions"):
        job_id, second = run_job(spec)
        calls = [r for r in server.requests if r.endpoint in MODEL_CALLS]
    # the new version is another video, asked in full, except where its request is byte for byte one already
    # answered (a proxy cut identically from the same frames): the response cache holds that answer
    assert 0 < len(calls) <= 3 * SEGMENTS
    assert second.records_written == SEGMENTS
    (closed,) = second.superseded
    assert (closed["video_id"], closed["superseded_by"]) == (old_id, new_id)
    assert closed["records_retired"] == SEGMENTS - 1 and closed["stages_closed"] >= 1

    found = checks.records(out)
    assert len(found) == SEGMENTS and {r["video"]["video_id"] for r in found} == {new_id}
    assert not old_records & {r["id"] for r in found}
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)

    db = Database(spec.db_url())
    with db.sessions() as s:
        old = s.get(Video, old_id)
        assert old.superseded_by == new_id and "content changed" in old.change_note
        assert set(s.scalars(select(SupersededRecord.record_id))) == old_records  # history kept
        open_runs = s.scalar(
            select(func.count())
            .select_from(StageRun)
            .where(StageRun.status.not_in(["done", "rejected"]), StageRun.job_id.is_not(None))
        )
        assert open_runs == 0
    assert StageStore(db).job_status(job_id) == "done"
    shown = CliRunner().invoke(
        app, ["status", job_id, "--database-url", spec.db_url(), "--format", "json"], env={"COLUMNS": "300"}
    )
    report = json.loads(shown.output)
    assert [(v["video_id"], v["superseded_by"]) for v in report["superseded"]] == [(old_id, new_id)]
    table = CliRunner().invoke(
        app, ["status", job_id, "--database-url", spec.db_url()], env={"COLUMNS": "300"}
    )
    assert "changed source" in table.output and old_id in table.output
    verified = CliRunner().invoke(app, ["verify", str(out), "--database-url", spec.db_url()])
    assert verified.exit_code == 0, verified.output
    db.dispose()

    exported = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(out), "--to", str(exported)])
    assert result.exit_code == 0, result.output
    rows = (exported / "train.jsonl").read_text().splitlines()
    assert len(rows) == SEGMENTS
