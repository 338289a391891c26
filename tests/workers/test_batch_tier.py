"""The batch tier on Ray against the simulator's batch APIs (Gemini `batches`, OpenAI `/v1/batches`): the same
records as standard calls, the plot chains in waves that keep every scope's memory order, failed items sent
again alone, `v2s status` listing what waits, and a backend without batches making standard calls."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from annotator.simulator.batch_store import BatchPlay
from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.models import ModelBatch, Segment, StageRun, Video
from tests.support.e2e import models_from
from tests.support.films import sample_copy
from tests.support.media import retitled

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
BATCH = {
    "V2S_PLOT_TIER": "batch",
    "V2S_SCRIPT_TIER": "batch",
    "V2S_DISTILL_TIER": "batch",
    "V2S_BATCH_POLL_S": "0.2",
}
SEGMENTS = 2  # of each film, at --max-segment-s 120


class FailOnce(Behaviours):
    """The script request of the second segment of one film fails (HTTP 500) the first time it is answered."""

    def __init__(self, segment_index: int) -> None:
        self.segment_index, self.failed = segment_index, False

    def before_answer(self, request: RequestInfo) -> Fault | None:
        if (
            request.stage.value == "script"
            and request.segment_index == self.segment_index
            and not self.failed
        ):
            self.failed = True
            return Fault(status=500, message="simulated failure of one batch item")
        return None


@pytest.fixture(scope="module")
def films(tmp_path_factory) -> tuple[Path, Path]:
    """Two different videos of the sample film (two scopes of SEGMENTS segments each)."""
    base = tmp_path_factory.mktemp("batch-films")
    film, screenplay = sample_copy(base / "film")
    folder = base / "videos"
    folder.mkdir()
    retitled(film, folder / "a.mp4", "a")
    retitled(film, folder / "b.mp4", "b")
    return folder, screenplay


def _run(folder: Path, screenplay: Path, out: Path, behaviours=None, **extra: str):
    play = Screenplay.load(screenplay)
    with (
        SimulatorServer(play, behaviours=behaviours, batches=BatchPlay(0.1, 0.2)) as server,
        models_from(server, "sim-test-key-batch", **extra),
    ):
        job_id, summary = run_job(JobSpec(source=str(folder), out=out, max_segment_s=120, num_cpus=2))
        return job_id, summary, server


@pytest.fixture(scope="module")
def runs(films, tmp_path_factory):
    folder, screenplay = films
    base = tmp_path_factory.mktemp("batch-runs")
    standard = _run(folder, screenplay, base / "standard")
    # the failure hits the second segment of whichever film the script batch answers first
    batch = _run(folder, screenplay, base / "batch", behaviours=FailOnce(2), **BATCH)
    return {"standard": (base / "standard", *standard), "batch": (base / "batch", *batch)}


def _records(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]
    return {r["id"]: json.dumps(r["script"], sort_keys=True) for r in rows}


def _db(out: Path) -> Database:
    return Database(sqlite_url(out / "v2s.sqlite"))


def test_a_batch_run_writes_the_same_records_as_standard_calls(runs):
    std_out, _, std_summary, std_server = runs["standard"]
    out, _, summary, server = runs["batch"]
    assert summary.records_written == std_summary.records_written == 2 * SEGMENTS
    assert summary.stage_failures == []
    assert _records(out) == _records(std_out)
    assert std_server.batches.created == 0
    # every answer came out of a batch: no synchronous model call at all
    assert not [r for r in server.requests if r.endpoint in ("generateContent", "chat.completions")]


def test_every_stage_is_billed_at_the_batch_tier_for_about_half(runs):
    std_db, db = _db(runs["standard"][0]), _db(runs["batch"][0])
    try:
        with db.sessions() as s:
            tiers = set(s.scalars(select(StageRun.tier).where(StageRun.stage != "export")))
            cost = {st: c for st, c in s.execute(_cost_by_stage())}
        with std_db.sessions() as s:
            std_cost = {st: c for st, c in s.execute(_cost_by_stage())}
    finally:
        db.dispose()
        std_db.dispose()
    assert tiers == {"batch"}
    # Gemini's batch price is half (the price table); the failed item's answer was never billed. DeepSeek's
    # API has no batch tier in the table, so the simulator's OpenAI batch costs what standard calls cost.
    for stage in ("plot", "script"):
        assert cost[stage] == pytest.approx(std_cost[stage] / 2, rel=0.02)
    assert cost["distill"] == pytest.approx(std_cost["distill"], rel=0.02)


def _cost_by_stage():
    from sqlalchemy import func

    return select(StageRun.stage, func.sum(StageRun.cost_usd)).group_by(StageRun.stage)


def test_plot_waves_keep_every_scopes_memory_order(runs):
    out, _, _, server = runs["batch"]
    db = _db(out)
    try:
        with db.sessions() as s:
            place = {
                seg.id: (video.uri, seg.idx)
                for seg, video in s.execute(select(Segment, Video).join(Video, Video.id == Segment.video_id))
            }
            waves = s.scalars(
                select(ModelBatch).where(ModelBatch.stage == "plot").order_by(ModelBatch.wave)
            ).all()
    finally:
        db.dispose()
    # wave k holds segment k of both films: one plot of each scope, each after its predecessor's wave
    assert [b.wave for b in waves] == list(range(1, SEGMENTS + 1))
    for k, batch in enumerate(waves, start=1):
        assert sorted(place[int(key)][1] for key in batch.keys) == [k, k]
        assert len({place[int(key)][0] for key in batch.keys}) == 2
    # a wave went only after the one before it had finished (its answers applied to the memory)
    for before, after in itertools.pairwise(waves):
        assert before.finished_at <= after.created_at
    plot_batches = [b for b in server.batches.batches.values() if "-plot-" in _name(b)]
    assert len(plot_batches) == SEGMENTS


def _name(batch) -> str:
    return batch.display_name or (batch.metadata or {}).get("v2s", "")


def test_a_failed_item_alone_is_sent_again(runs):
    out, _, _, server = runs["batch"]
    scripts = [b for b in server.batches.batches.values() if "-script-" in _name(b)]
    first_attempts = [b for b in scripts if "-script-1-" in _name(b)]
    retries = [b for b in scripts if "-script-2-" in _name(b)]
    assert len(retries) == 1 and len(retries[0].items) == 1
    failed_key = retries[0].items[0].key
    assert [b.failed for b in scripts if failed_key in [i.key for i in b.items]] == [1, 0]
    held = [i.key for b in first_attempts for i in b.items]
    assert sorted(held) == sorted(set(held)) and len(held) == 2 * SEGMENTS  # each once in a first batch
    db = _db(out)
    try:
        with db.sessions() as s:
            retry = s.scalars(select(ModelBatch).where(ModelBatch.attempt == 2)).one()
            assert retry.keys == [int(failed_key)] and retry.state == "done"
            assert s.scalar(select(ModelBatch).where(ModelBatch.state == "open")) is None
    finally:
        db.dispose()


def test_status_shows_batch_spend_and_nothing_waiting(runs):
    out, job_id, _, _ = runs["batch"]
    result = CliRunner().invoke(app, ["status", job_id, "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [t["tier"] for t in report["per_tier"]] == ["batch"]
    assert report["open_batches"] == []


def test_a_server_without_batches_gets_standard_calls(films, tmp_path):
    """DeepSeek's API has no batch endpoint: a distill stage set to batch is left to standard calls, while
    the Gemini stages batch (asked once, at the start of the run)."""
    from annotator.settings import ModelSettings
    from profiles_db.stages import Stage
    from workers.context import RunContext
    from workers.driver import batch_stages
    from workers.splitter.settings import SplitSettings

    _, screenplay = films
    extra = {"V2S_PLOT_TIER": "batch", "V2S_DISTILL_TIER": "batch"}
    with (
        SimulatorServer(Screenplay.load(screenplay), openai_batches=False) as server,
        models_from(server, "sim-test-key-batch", **extra),
    ):
        url = sqlite_url(tmp_path / "v2s.sqlite")
        ctx = RunContext(
            job_id="j", db_url=url, out_dir=str(tmp_path), models=ModelSettings(), split=SplitSettings()
        )
        chosen = batch_stages(ctx)
        listed = [r for r in server.requests if r.endpoint.startswith("batches")]
    assert chosen == [Stage.PLOT]
    assert listed  # Gemini's batches were asked for; OpenAI's answered 404 (not recorded as batch calls)


def test_open_batches_are_listed_by_status(tmp_path):
    """What `v2s status` shows of a batch still waiting (recorded as a run records it)."""
    from jobs.report import status_view
    from profiles_db.stages import Stage, StageStore

    db = Database(sqlite_url(tmp_path / "v2s.sqlite"))
    try:
        store = StageStore(db)
        store.ensure_job("job-1", "src", str(tmp_path), {})
        store.open_batch(
            "batches/abc",
            job_id="job-1",
            stage=Stage.SCRIPT,
            backend="gemini",
            model="gemini-2.5-pro",
            segment_ids=[1, 2, 3],
            estimated_cost_usd=0.042,
        )
        from rich.console import Console

        console = Console(width=160, record=True)
        console.print(status_view(db, "job-1"))
        shown = console.export_text()
        report = json.loads(
            CliRunner().invoke(app, ["status", "job-1", "--database-url", db.url, "--format", "json"]).output
        )
    finally:
        db.dispose()
    assert "batches/abc" in shown and "3 requests" in shown and "0.0420" in shown
    assert report["open_batches"][0]["items"] == 3
    assert report["open_batches"][0]["estimated_cost_usd"] == pytest.approx(0.042)


def test_waves_are_grouped_by_scope(tmp_path):
    """The scheduler alone: every wave holds at most one plot per scope and waits for the wave before."""
    from profiles_db.stages import RunStatus, Stage
    from workers.context import VideoSource
    from workers.results import PreparedVideo, SegmentOutcome
    from workers.scheduler import Scheduler, TaskKind

    videos = [
        VideoSource(uri=f"v{i}", local_path=f"v{i}", video_id=f"v{i}", scope="s" if i < 2 else None)
        for i in range(3)
    ]
    segments = {"v0": [1, 2], "v1": [3], "v2": [4, 5, 6]}
    s = Scheduler(
        videos,
        max_in_flight=8,
        order=lambda scope, ids: [sid for vid in sorted(ids) for sid in segments[vid]],
        batch_stages=[Stage.PLOT],
    )
    waves: list[list[int]] = []
    applied: dict[int, int] = defaultdict(int)
    pending = s.next_tasks()
    while pending:
        task = pending.pop(0)
        if task.kind == TaskKind.PREPARE:
            s.finished(task, PreparedVideo(video_id=task.video_id, ok=True, segments=segments[task.video_id]))
        elif task.kind == TaskKind.BATCH:
            waves.append([item.segment_id for item in task.items])
            for item in task.items:
                applied[item.segment_id] = len(waves)
            s.finished(
                task, [SegmentOutcome(segment_id=i.segment_id, status=RunStatus.DONE) for i in task.items]
            )
        else:
            result = (
                []
                if task.kind == TaskKind.RECORDS
                else SegmentOutcome(segment_id=task.segment_id, status=RunStatus.DONE)
            )
            s.finished(task, result)
        pending += s.next_tasks()
    # scope s chains 1 → 2 → 3, scope v2 chains 4 → 5 → 6: a wave per chain step, never two of one scope
    assert waves == [[1, 4], [2, 5], [3, 6]]
