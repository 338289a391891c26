"""The driver: a thin Ray loop that submits what the Scheduler says, waits, and reports back.

The policy (scope chains, queues, back-pressure, what runs next) is `workers.scheduler.Scheduler`; this module
only turns its tasks into Ray calls. Records go from build_records straight to the shard writer actor as object
refs: the driver never holds media or records. Workers are Ray tasks with resource limits (prepare 1 CPU,
model stages 0.25 CPU), not actors: a lost node's tasks are retried by Ray elsewhere (max_retries), and the
stage leases in SQL make the retry safe.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

import ray

from annotator.gateway import ModelCallError
from annotator.settings import ModelSettings
from profiles_db.outage import Patient, as_outage
from profiles_db.stages import FINAL, MODEL_STAGES, RunStatus, Stage, StageStore
from workers.batch_tasks import run_stage_batch
from workers.budget import call_bound
from workers.context import RunContext, VideoSource, database, gateway, patience, store
from workers.results import SegmentOutcome
from workers.scheduler import RunSummary, Scheduler, Task, TaskKind
from workers.shard_actor import ShardWriterActor
from workers.shards import ShardWriter
from workers.tasks import annotate_segment, build_records, prepare_video, reason_plot
from workers.versions import close_old_versions

Event = Callable[[str, dict], None]
log = logging.getLogger(__name__)

__all__ = ["RunSummary", "run_pipeline"]


def _submit(ctx: RunContext, task: Task, videos: dict[str, VideoSource]) -> ray.ObjectRef:
    if task.kind == TaskKind.PREPARE:
        return prepare_video.remote(ctx, videos[task.video_id])
    if task.kind == TaskKind.PLOT:
        return reason_plot.remote(ctx, task.segment_id, task.chain_index)
    if task.kind == TaskKind.ANNOTATE:  # the script only when its distillation goes in a batch
        return annotate_segment.remote(ctx, task.segment_id, distill=task.stage != Stage.SCRIPT)
    if task.kind == TaskKind.BATCH:
        items = [(item.segment_id, item.chain_index) for item in task.items]
        return run_stage_batch.remote(ctx, task.stage, items, task.wave)
    return build_records.remote(ctx, task.video_id)


class StoreLedger:
    """The budget's facts from the job database: what the job and a segment have recorded, and the bound of a
    task's calls (workers.budget.call_bound for each stage it will run: stages already final cost nothing)."""

    def __init__(self, ctx: RunContext, st: StageStore, settings: ModelSettings) -> None:
        self.ctx, self.st, self.settings = ctx, st, settings
        self._spans: dict[int, tuple[float, bool]] = {}

    def spent(self) -> float:
        return float(self.st.usage(self.ctx.job_id)["cost_usd"])

    def segment_spent(self, segment_id: int) -> float:
        return self.st.segment_cost(segment_id)

    def bound(self, task: Task) -> float:
        if task.kind == TaskKind.BATCH:
            tier = self.settings.tier(task.stage)
            return sum(self._bound(item.segment_id, [task.stage], tier) for item in task.items)
        return self._bound(task.segment_id, task_stages(task), None)

    def _bound(self, segment_id: int, stages: list[Stage], tier) -> float:
        if segment_id not in self._spans:
            segment, video = self.st.segment(segment_id)
            self._spans[segment_id] = (segment.end_s - segment.start_s, bool(video.has_audio))
        seconds, audio = self._spans[segment_id]
        statuses = self.st.statuses(segment_id)
        return sum(
            call_bound(self.settings, stage, seconds, audio, tier, self.ctx.context_token_budget)
            for stage in stages
            if statuses.get(stage) not in FINAL
        )


def task_stages(task: Task) -> list[Stage]:
    """The model stages a plot or annotate task (or a batch item) may run."""
    if task.kind == TaskKind.PLOT:
        return [Stage.PLOT]
    return [Stage.SCRIPT] if task.stage == Stage.SCRIPT else [Stage.SCRIPT, Stage.DISTILL]


def give_up_for_budget(ctx: RunContext, st: StageStore, task: Task) -> SegmentOutcome:
    """A GIVE_UP task: the first stage of it not final yet ends rejected with outcome `budget`."""
    (item,) = task.items
    statuses = st.statuses(item.segment_id)
    stages = [task.stage] if task.stage else task_stages(item)
    stage = next((s for s in stages if statuses.get(s) not in FINAL), stages[-1])
    spent = st.segment_cost(item.segment_id)
    reason = (
        f"budget: the segment has cost ${spent:.4f}, its ceiling is ${ctx.budget.segment_limit_usd:g} "
        "(--segment-budget-usd)"
    )
    st.give_up_for_budget(item.segment_id, stage, reason)
    return SegmentOutcome(segment_id=item.segment_id, status=RunStatus.REJECTED, stage=stage, error=reason)


def batch_stages(ctx: RunContext) -> list[Stage]:
    """The stages at the batch tier whose backend has a batch API (the others make standard calls)."""
    gw = gateway(ctx)
    out = []
    for stage in MODEL_STAGES:
        if gw.settings.tier(stage) != "batch":
            continue
        backend = getattr(gw.settings, f"{stage.value}_backend")
        try:
            api = gw.batches(backend)
        except ModelCallError as exc:
            log.warning("%s: the batch tier is not available (%s); standard calls instead", stage, exc)
            continue
        if api is None:
            log.warning("%s: the %s server has no batch API; standard calls instead", stage, backend)
            continue
        out.append(stage)
    return out


def _verified_output(ctx: RunContext) -> list[str]:
    """Outputs are verified, not trusted: every shard the database recorded must be there as written (damaged
    or deleted ones are rebuilt from the database) and nothing else; else OutputDamaged names the file."""
    verified = ShardWriter(ctx.out_dir, database(ctx.db_url), job_id=ctx.job_id).report
    repairs = [f"{f.name}: {f.problem}" for f in verified.findings]
    if verified.manifest_rewritten:
        repairs.append("manifest.json: did not match the database; rendered again from it")
    return repairs


def _writer(ctx: RunContext):
    # No node affinity for the one writer: a process that ran an earlier Ray session may report a stale node id
    # (seen in the test suite), which a hard affinity turns into an actor that never starts. Where it runs does
    # not matter: a lost writer is restarted (max_restarts) and its calls retried, and the writer is idempotent
    # (the database says which records are exported; a restarted writer recovers its half-written shard first).
    writer = ShardWriterActor.options(max_task_retries=3).remote(
        ctx.db_url, ctx.out_dir, ctx.shard_max_records, ctx.job_id, ctx.outage_wait_s
    )
    ray.get(writer.__ray_ready__.remote())  # started (and its half-written shard recovered) before any work
    return writer


class FirstInterrupt:
    """Ctrl-C during a run: the first stops new work and lets the tasks in flight finish, because their model
    calls are paid for as they answer and are stored when they finish (killed, they would be paid again on
    resume); a second Ctrl-C stops at once. Only the main thread can take signals: elsewhere nothing changes.
    Ray's own processes block SIGINT, so a terminal's Ctrl-C reaches only this driver."""

    def __init__(self) -> None:
        self.hit = False
        self._previous = None

    def __enter__(self) -> FirstInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.hit:
            raise KeyboardInterrupt
        self.hit = True
        log.warning("interrupted: no new work; the tasks in flight finish (Ctrl-C again stops at once)")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def run_pipeline(
    ctx: RunContext,
    videos: list[VideoSource],
    on_event: Event | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    prepare_only: bool = False,
) -> RunSummary:
    """Run the job's videos through every stage; `prepare_only` splits them and stops (`v2s plan`)."""
    with FirstInterrupt() as interrupt:
        asked = should_stop or (lambda: False)
        summary = _pipeline(ctx, videos, on_event, lambda: interrupt.hit or asked(), prepare_only)
        summary.interrupted = interrupt.hit
    return summary


def _pipeline(ctx: RunContext, videos, on_event, stop, prepare_only: bool) -> RunSummary:
    emit = on_event or (lambda kind, data: None)
    # the driver's own reads and idempotent writes wait out a database outage too (the tasks do, on their own)
    waits = patience(ctx)
    st = Patient(store(ctx), waits)
    scheduler = Scheduler(
        videos,
        max_in_flight=ctx.max_in_flight,
        order=st.scope_segments,
        emit=emit,
        prepare_only=prepare_only,
        batch_stages=() if prepare_only else batch_stages(ctx),
        batch_max_items=ctx.models.batch_max_items,
        budget=None if prepare_only else ctx.budget,
        ledger=StoreLedger(ctx, st, ctx.models),
    )
    if prepare_only:  # no record is written, so neither the output's shards nor a writer are needed
        _drain(ctx, scheduler, videos, stop, None)
        return scheduler.summary
    # first: the records of a changed source's old version leave the catalog, and the verification just below
    # takes them out of the shard files
    superseded = waits.call(lambda: close_old_versions(database(ctx.db_url), videos), "the driver")
    scheduler.summary.superseded = [v.model_dump() for v in superseded]
    scheduler.summary.repairs = waits.call(lambda: _verified_output(ctx), "the output's verification")
    writer = _writer(ctx)
    acks = _drain(ctx, scheduler, videos, stop, writer)
    ray.get(acks)
    summary = scheduler.summary
    summary.records_written = ray.get(writer.finish.remote())
    st.settle_videos(scheduler.touched)
    emit(
        "done", {"records": summary.records_written, "cancelled": summary.cancelled, "paused": summary.paused}
    )
    return summary


def _drain(ctx: RunContext, scheduler: Scheduler, videos, stop, writer) -> list[ray.ObjectRef]:
    """Submit what the scheduler says until nothing is left; returns the writer's outstanding acks."""
    by_id = {v.video_id: v for v in videos}
    pending: dict[ray.ObjectRef, Task] = {}
    acks: list[ray.ObjectRef] = []  # the writer's acknowledgements

    st = Patient(store(ctx), patience(ctx))

    def submit() -> None:
        if stop():  # checked here too: a stop that came while waiting starts nothing more, not one round more
            scheduler.cancel()
        given_up = True
        while given_up:  # a give-up is done here, at once, and may let the next task of its chain go
            given_up = False
            for task in scheduler.next_tasks():
                if task.kind == TaskKind.GIVE_UP:
                    scheduler.finished(task, give_up_for_budget(ctx, st, task))
                    given_up = True
                else:
                    pending[_submit(ctx, task, by_id)] = task

    try:
        submit()
        while pending:
            if stop():
                scheduler.cancel()
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not done:
                continue
            task = pending.pop(done[0])
            if task.kind == TaskKind.RECORDS:  # the records stay in the object store: the writer fetches them
                acks.append(writer.write_many.remote(done[0]))
                scheduler.finished(task)
            else:
                scheduler.finished(task, ray.get(done[0]))
            submit()
            if len(acks) > 4 * scheduler.limit:  # keep the list short: drop those already finished
                finished, acks = ray.wait(acks, num_returns=len(acks), timeout=0)
                ray.get(finished)
    except Exception as exc:
        if as_outage(exc) is not None and pending:
            # the run stops on an outage longer than its patience; the tasks in flight meet the same outage and
            # stop within theirs. Waited for, so none of them is still paying or writing when a resume starts.
            log.warning("the database stayed away: waiting for %d tasks in flight to stop", len(pending))
            ray.wait(list(pending), num_returns=len(pending))
        raise
    return acks
