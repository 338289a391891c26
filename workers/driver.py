"""The driver loop: videos are prepared in parallel, plot chains run in order per scope, annotation and export
run in parallel as soon as their inputs are ready. The driver holds ids only, never media or records in bulk."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import ray

from workers.context import RunContext, VideoSource, store
from workers.shard_actor import ShardWriterActor
from workers.tasks import annotate_segment, build_records, prepare_video, reason_plot

Event = Callable[[str, dict], None]


@dataclass
class RunSummary:
    videos: int = 0
    failed_videos: dict[str, str] = field(default_factory=dict)
    segments: int = 0
    stage_failures: list[dict] = field(default_factory=list)
    records_written: int = 0


@dataclass
class _Chain:
    """One scope's plot chain: its segments in order (episode, then time)."""

    segments: list[tuple[str, int]]  # (video_id, segment_id)
    position: int = 0


def run_pipeline(ctx: RunContext, videos: list[VideoSource], on_event: Event | None = None) -> RunSummary:
    emit = on_event or (lambda kind, data: None)
    summary = RunSummary(videos=len(videos))
    writer = ShardWriterActor.remote(ctx.db_url, ctx.out_dir, ctx.shard_max_records)

    prepared = ray.get([prepare_video.remote(ctx, v) for v in videos])
    by_id = {v.video_id: v for v in videos}
    chains: dict[str, _Chain] = {}
    remaining: dict[str, int] = defaultdict(int)  # video_id → segments not yet annotated
    for result in prepared:
        emit("prepared", result)
        if not result["ok"]:
            summary.failed_videos[by_id[result["video_id"]].uri] = result["error"]
            continue
        if result.get("skipped"):
            continue
        video = by_id[result["video_id"]]
        scope = video.scope or video.video_id
        chain = chains.setdefault(scope, _Chain(segments=[]))
        chain.segments.extend((video.video_id, sid) for sid in result["segments"])
        remaining[video.video_id] += len(result["segments"])
        summary.segments += len(result["segments"])
    for scope, chain in chains.items():
        order = {v.video_id: (v.episode if v.episode is not None else 0, v.uri) for v in videos}
        chain.segments.sort(key=lambda item: (order[item[0]], item[1]))
        emit("chain", {"scope": scope, "segments": len(chain.segments)})

    pending: dict[ray.ObjectRef, tuple[str, object]] = {}

    def advance(scope: str) -> None:
        chain = chains[scope]
        if chain.position < len(chain.segments):
            video_id, segment_id = chain.segments[chain.position]
            chain.position += 1
            pending[reason_plot.remote(ctx, segment_id, chain.position)] = ("plot", (scope, video_id))

    for scope in chains:
        advance(scope)
    exported_refs = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        kind, info = pending.pop(ref)
        result = ray.get(ref)
        emit(kind, result if isinstance(result, dict) else {"count": len(result)})
        if kind == "plot":
            scope, video_id = info
            advance(scope)  # the next segment's plot depends on this one's memory update
            pending[annotate_segment.remote(ctx, result["segment_id"])] = ("annotate", video_id)
            if result["status"] not in ("done",):
                summary.stage_failures.append(result)
        elif kind == "annotate":
            video_id = info
            if result["status"] not in ("done",):
                summary.stage_failures.append(result)
            remaining[video_id] -= 1
            if remaining[video_id] == 0:  # all its plots are done too: names are final for this video
                pending[build_records.remote(ctx, video_id)] = ("records", video_id)
        elif kind == "records":
            exported_refs.append(writer.write_many.remote(result))
    ray.get(exported_refs)
    summary.records_written = ray.get(writer.finish.remote())
    store(ctx).settle_videos(list(remaining))
    emit("done", {"records": summary.records_written})
    return summary
