"""The driver loop: a streaming scheduler over Ray tasks.

- Videos are prepared in parallel; results stream in with ray.wait, and a scope's plot chain starts as soon as
  ALL of that scope's videos are prepared (its order is only known then), not when every video of the job is.
- Plot chains are serialised per scope (segment n+1's plot reads the memory segment n wrote); chains of
  different scopes, and script/distill of segments whose plot is done, run in parallel. A chain is a chain: a
  failed plot stops its scope (the scope waits, reported in the summary, while other scopes go on) and resume
  continues it in order; a plot given up on purpose (`v2s resume --give-up`) is stepped over.
- A scope's videos are exported only once its whole chain is done or given up, so every name is final when
  its records are written (a name learned in the last segment reaches the first segment's record).
- At most `max_in_flight` tasks are submitted at a time; the rest wait in small queues of ids. Records go from
  build_records straight to the shard writer actor as object refs: the driver never holds media or records.
- Workers are Ray tasks with resource limits (prepare 1 CPU, model stages 0.25 CPU), not actors: a lost node's
  tasks are retried by Ray elsewhere (max_retries), and the stage leases in SQL make the retry safe.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import ray

from workers.context import RunContext, VideoSource, database, store
from workers.shard_actor import ShardWriterActor
from workers.shards import ShardWriter
from workers.tasks import annotate_segment, build_records, prepare_video, reason_plot

Event = Callable[[str, dict], None]


@dataclass
class RunSummary:
    videos: int = 0
    failed_videos: dict[str, str] = field(default_factory=dict)
    segments: int = 0
    stage_failures: list[dict] = field(default_factory=list)
    records_written: int = 0
    cancelled: bool = False
    # scope → the segment its memory chain waits at, and why (a failed plot: resume continues from there)
    blocked_chains: dict[str, dict] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)  # what the output verification found and mended


@dataclass
class _Chain:
    """One scope's plot chain: its segments in the CPM's order, and how far it has got."""

    segments: list[tuple[str, int]]  # (video_id, segment_id)
    position: int = 0
    complete: bool = False  # every plot done or given up: names are final, videos may be exported


def run_pipeline(
    ctx: RunContext,
    videos: list[VideoSource],
    on_event: Event | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunSummary:
    emit = on_event or (lambda kind, data: None)
    stop = should_stop or (lambda: False)
    summary = RunSummary(videos=len(videos))
    st = store(ctx)
    # Outputs are verified, not trusted: every shard the database recorded must be there as written (damaged
    # or deleted ones are rebuilt from the database) and nothing else; else OutputDamaged names the file.
    verified = ShardWriter(ctx.out_dir, database(ctx.db_url), job_id=ctx.job_id).report
    summary.repairs = [f"{f.name}: {f.problem}" for f in verified.findings]
    if verified.manifest_rewritten:
        summary.repairs.append("manifest.json: did not match the database; rendered again from it")
    # No node affinity for the one writer: a process that ran an earlier Ray session may report a stale node id
    # (seen in the test suite), which a hard affinity turns into an actor that never starts. Where it runs does
    # not matter: a lost writer is restarted (max_restarts) and its calls retried, and the writer is idempotent
    # (the database says which records are exported; a restarted writer recovers its half-written shard first).
    writer = ShardWriterActor.options(max_task_retries=3).remote(
        ctx.db_url, ctx.out_dir, ctx.shard_max_records, ctx.job_id
    )
    ray.get(writer.__ray_ready__.remote())  # started (and its half-written shard recovered) before any work
    limit = max(1, ctx.max_in_flight)

    by_id = {v.video_id: v for v in videos}
    scope_of = {v.video_id: v.scope or v.video_id for v in videos}
    unprepared: dict[str, int] = defaultdict(int)  # scope → videos not yet prepared
    for v in videos:
        unprepared[scope_of[v.video_id]] += 1
    ready_videos: dict[str, list[str]] = defaultdict(list)  # scope → prepared video ids with work
    chains: dict[str, _Chain] = {}
    remaining: dict[str, int] = defaultdict(int)  # video_id → segments whose annotation has not returned
    scope_videos: dict[str, list[str]] = defaultdict(list)  # scope → its prepared video ids with work
    st_segments: dict[str, list[int]] = {}  # video_id → its segment ids (ids only)
    touched: list[str] = []

    to_prepare = deque(videos)
    queue: deque[tuple[str, object]] = deque()  # (kind, argument) waiting for a free slot
    pending: dict[ray.ObjectRef, tuple[str, object]] = {}
    written_refs: list[ray.ObjectRef] = []

    def submit(kind: str, arg: object) -> None:
        if kind == "plot":
            scope = arg
            chain = chains[scope]
            video_id, segment_id = chain.segments[chain.position]
            chain.position += 1
            pending[reason_plot.remote(ctx, segment_id, chain.position)] = ("plot", (scope, video_id))
        elif kind == "annotate":
            segment_id, video_id = arg
            pending[annotate_segment.remote(ctx, segment_id)] = ("annotate", video_id)
        elif kind == "records":
            pending[build_records.remote(ctx, arg)] = ("records", arg)

    def fill() -> None:
        # Work already under way first (it frees memory and finishes videos), new videos last.
        while len(pending) < limit and queue and not summary.cancelled:
            submit(*queue.popleft())
        while len(pending) < limit and to_prepare and not summary.cancelled:
            video = to_prepare.popleft()
            pending[prepare_video.remote(ctx, video)] = ("prepared", video.video_id)

    def scope_prepared(scope: str) -> None:
        video_ids = ready_videos.pop(scope, [])
        if not video_ids:
            return
        ordered = st.scope_segments(scope, video_ids)
        owner = {}
        for vid in video_ids:
            for sid in st_segments[vid]:
                owner[sid] = vid
        chain = _Chain(segments=[(owner[sid], sid) for sid in ordered])
        chains[scope] = chain
        scope_videos[scope] = video_ids
        emit("chain", {"scope": scope, "segments": len(chain.segments)})
        if chain.segments:
            queue.append(("plot", scope))
        else:
            chain.complete = True

    def export_ready(video_id: str) -> None:
        """Records of a video once its scope's chain is complete and all its annotations returned."""
        if chains[scope_of[video_id]].complete and remaining[video_id] == 0:
            queue.append(("records", video_id))

    def advance(scope: str) -> None:
        chain = chains[scope]
        if chain.position < len(chain.segments):  # the next plot reads the memory this one wrote
            queue.appendleft(("plot", scope))
            return
        chain.complete = True
        for vid in scope_videos[scope]:
            export_ready(vid)

    fill()
    while pending:
        if stop() and not summary.cancelled:
            summary.cancelled = True  # no new work; what is running finishes and is kept
            queue.clear()
            to_prepare.clear()
        done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        if not done:
            continue
        ref = done[0]
        kind, info = pending.pop(ref)
        if kind == "records":
            # the records stay in the object store: the writer actor fetches them itself
            written_refs.append(writer.write_many.remote(ref))
            emit("records", {"video_id": info})
            fill()
            continue
        result = ray.get(ref)
        emit(kind, result)
        if kind == "prepared":
            video_id = info
            scope = scope_of[video_id]
            if not result["ok"]:
                summary.failed_videos[by_id[video_id].uri] = result["error"]
            elif not result.get("skipped"):
                st_segments[video_id] = result["segments"]
                ready_videos[scope].append(video_id)
                remaining[video_id] += len(result["segments"])
                summary.segments += len(result["segments"])
                touched.append(video_id)
            unprepared[scope] -= 1
            if unprepared[scope] == 0:
                scope_prepared(scope)
        elif kind == "plot":
            scope, video_id = info
            if result["status"] == "done":
                queue.append(("annotate", (result["segment_id"], video_id)))
                advance(scope)
            elif result["status"] == "rejected":  # given up on purpose: no record, the chain goes on
                remaining[video_id] -= 1
                advance(scope)
            else:  # the chain stops here; later segments would be reasoned over a memory with a hole
                summary.stage_failures.append(result)
                summary.blocked_chains[scope] = {
                    "segment_id": result["segment_id"],
                    "error": result.get("error") or f"plot is {result['status']}",
                    "waiting": len(chains[scope].segments) - chains[scope].position,
                }
                emit("blocked", {"scope": scope, **summary.blocked_chains[scope]})
        elif kind == "annotate":
            video_id = info
            if result["status"] != "done":
                summary.stage_failures.append(result)
            remaining[video_id] -= 1
            export_ready(video_id)
        fill()
        # keep the list of writer acknowledgements short: drop those already finished
        if len(written_refs) > 4 * limit:
            finished, written_refs = ray.wait(written_refs, num_returns=len(written_refs), timeout=0)
            ray.get(finished)
    ray.get(written_refs)
    summary.records_written = ray.get(writer.finish.remote())
    st.settle_videos(touched)
    emit("done", {"records": summary.records_written, "cancelled": summary.cancelled})
    return summary
