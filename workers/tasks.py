"""The Ray tasks of one run. Each is idempotent: it looks at the stage state first and skips finished work."""

from __future__ import annotations

import logging
import os
import socket

import ray
from sqlalchemy import select

from annotator.gateway.base import Media
from annotator.media import MediaError, probe
from annotator.records import build_record
from annotator.schemas import DistilledThinking, NextSegmentPlot, Script
from annotator.schemas.provenance import Provenance
from annotator.schemas.record import MemoryGap, RecordVideo
from annotator.stages import (
    PlotReasoner,
    QualityGates,
    ScriptWriter,
    SegmentInput,
    ThinkingDistiller,
    synopsis,
)
from profiles_db.cpm import ChainOrderError
from profiles_db.models import Segment, StageRun, Video
from profiles_db.stages import StageUsage
from workers.context import RunContext, VideoSource, cpm, database, gateway, store
from workers.fetch import ensure_proxy, local_copy, local_proxy, proxy_present, release_copy
from workers.metrics import record_stage, record_video
from workers.splitter import detect_shots, detect_silences, file_sha256, make_proxy, plan_segments
from workers.storage import join, write_text

log = logging.getLogger(__name__)


def _owner() -> str:
    """The lease owner: the Ray task id, which a retry of the task keeps (so a task re-run after its node
    died takes its own lease back at once); host:pid outside Ray."""
    try:
        task_id = ray.get_runtime_context().get_task_id()
    except Exception:  # not inside a Ray task
        task_id = None
    return f"task:{task_id}" if task_id else f"{socket.gethostname()}:{os.getpid()}"


def _usage(result) -> StageUsage:
    return StageUsage(
        model=result.model,
        prompt_version=result.prompt_version,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_usd=result.usage.cost_usd,
    )


def _failed(st, segment_id: int, stage: str, result) -> dict:
    """Store a stage's failure with its specific outcome and reason; the run goes on with other segments."""
    st.fail(
        segment_id, stage, result.error or f"{stage} failed", outcome=result.outcome, usage=_usage(result)
    )
    record_stage(stage, "failed", _usage(result))
    return {"segment_id": segment_id, "status": "failed", "stage": stage, "error": result.error}


@ray.remote(num_cpus=1, max_retries=2)
def prepare_video(ctx: RunContext, video: VideoSource) -> dict:
    """Probe, split at shots (preferring silences) and cut proxies. A bad input fails only itself.

    A video split before keeps its segments (record ids stay stable, no detection runs again); only its missing
    or broken proxies are cut again. A done video is skipped, after checking its proxies are still there."""
    st = store(ctx)
    status = st.register_video(
        video.video_id, video.uri, video.scope or video.video_id, video.episode, ctx.job_id
    )
    stored = st.segment_spans(video.video_id)
    if status == "done" and all(proxy_present(uri) for _, uri in stored):
        return {"video_id": video.video_id, "ok": True, "skipped": True}
    path = None
    try:
        path = local_copy(video)  # a bucket object is downloaded to the local cache first
        if stored:
            spans = [(start, end) for (start, end), _ in stored]
        else:
            info = probe(path, name=video.uri)
            st.set_video(
                video.video_id,
                duration_s=info.duration_s,
                fps=info.fps,
                width=info.width,
                height=info.height,
                has_audio=info.has_audio,
            )
            cuts = detect_shots(path)
            silences = detect_silences(path) if info.has_audio else []
            plans = plan_segments(info.duration_s, cuts, ctx.max_segment_s, silences)
            spans = [(plan.start_s, plan.end_s) for plan in plans]
        proxies = []
        for idx, (start_s, end_s) in enumerate(spans, start=1):
            tag = Provenance(
                video_id=video.video_id,
                source_uri=video.uri,
                segment_index=idx,
                start_s=start_s,
                end_s=end_s,
            )
            proxy_uri = ensure_proxy(  # OUT/proxies/… locally or in the bucket; cut when missing or broken
                ctx.out_dir,
                video.video_id,
                idx,
                lambda target, tag=tag: make_proxy(
                    path, target, tag, height=ctx.proxy_height, fps=ctx.proxy_fps
                ),
            )
            proxies.append((start_s, end_s, proxy_uri))
        if status == "done":  # its proxies are back; nothing else to do
            return {"video_id": video.video_id, "ok": True, "skipped": True}
        segment_ids = st.save_segments(video.video_id, proxies)
        st.set_video(video.video_id, status="split")
        record_video("split")
        return {"video_id": video.video_id, "ok": True, "segments": segment_ids}
    except MediaError as exc:
        if status == "done":  # its records are written; a source gone since then does not undo that
            log.warning("%s: proxies missing and cannot be cut again: %s", video.uri, exc)
            return {"video_id": video.video_id, "ok": True, "skipped": True, "warning": str(exc)}
        st.set_video(video.video_id, status="failed", error=str(exc))
        record_video("failed")
        return {"video_id": video.video_id, "ok": False, "error": str(exc)}
    finally:
        release_copy(video, path)


def _segment_input(segment: Segment, index: int) -> SegmentInput:
    proxy = local_proxy(segment.proxy_uri)
    return SegmentInput(
        index=index,
        start_s=segment.start_s,
        end_s=segment.end_s,
        media=Media(path=proxy, sha256=file_sha256(proxy), resolution=None),
    )


def _load(ctx: RunContext, segment_id: int) -> tuple[Segment, Video]:
    with database(ctx.db_url).sessions() as s:
        segment = s.get(Segment, segment_id)
        return segment, s.get(Video, segment.video_id)


@ray.remote(num_cpus=0.25, max_retries=2)
def reason_plot(ctx: RunContext, segment_id: int, chain_index: int) -> dict:
    """Plot reasoning of one segment; the driver calls these strictly in order within a scope."""
    st, manager = store(ctx), cpm(ctx)
    segment, video = _load(ctx, segment_id)
    # wait out a dead worker's lease: the next segment's plot must not run before this one's
    if st.claim_waiting(segment_id, "plot", _owner(), ctx.job_id) != "claimed":
        return {"segment_id": segment_id, "status": st.result(segment_id, "plot")[0]}
    settings = gateway(ctx.db_url).settings
    reasoner = PlotReasoner(gateway(ctx.db_url), backend=settings.plot_backend, model=settings.plot_model)
    context = manager.context(video.scope, segment_id, token_budget=ctx.context_token_budget)
    result = reasoner.reason(_segment_input(segment, chain_index), context)
    if not result.ok:
        return _failed(st, segment_id, "plot", result)
    try:
        report = manager.apply(video.scope, segment_id, result.value)
    except ChainOrderError as exc:  # the answer stays in the response cache: a resume in order pays nothing
        st.fail(segment_id, "plot", str(exc), outcome="out_of_order", usage=_usage(result))
        return {"segment_id": segment_id, "status": "failed", "stage": "plot", "error": str(exc)}
    for warning in report.warnings:
        log.warning("segment %s: %s", segment_id, warning)
    st.complete(
        segment_id,
        "plot",
        {
            "answer": result.value.model_dump(mode="json"),
            "code_map": report.code_map,
            "warnings": report.warnings,
        },
        _usage(result),
    )
    record_stage("plot", "done", _usage(result))
    return {"segment_id": segment_id, "status": "done"}


@ray.remote(num_cpus=0.25, max_retries=2)
def annotate_segment(ctx: RunContext, segment_id: int) -> dict:
    """Script generation + quality gates + thinking distillation for a segment whose plot is done."""
    st, manager, gw = store(ctx), cpm(ctx), gateway(ctx.db_url)
    settings = gw.settings
    plot_status, plot_result = st.result(segment_id, "plot")
    if plot_status != "done":
        return {"segment_id": segment_id, "status": "skipped", "reason": f"plot is {plot_status}"}
    segment, video = _load(ctx, segment_id)
    plot = NextSegmentPlot.model_validate(plot_result["answer"])
    code_map: dict[str, str] = plot_result.get("code_map", {})

    status, script_result = st.result(segment_id, "script")
    if status not in ("done", "rejected") and st.claim(segment_id, "script", _owner(), ctx.job_id):
        resolve = manager.resolver(video.scope)
        profiles = [p for p in (resolve(c) for c in dict.fromkeys(code_map.values())) if p]
        writer = ScriptWriter(gw, backend=settings.script_backend, model=settings.script_model)
        result = writer.write(_segment_input(segment, segment.idx), profiles, synopsis(plot, code_map))
        if not result.ok:
            return _failed(st, segment_id, "script", result)
        problems = QualityGates().check(
            result.value,
            segment.end_s - segment.start_s,
            lambda c: resolve(c) is not None,
        )
        payload = {"script": result.value.model_dump(mode="json")}
        if problems:
            st.fail(
                segment_id,
                "script",
                "; ".join(problems),
                outcome="rejected",
                rejected=True,
                usage=_usage(result),
                result=payload,
            )
            _write_reject(ctx, video, segment, problems)
            record_stage("script", "rejected", _usage(result))
            return {"segment_id": segment_id, "status": "rejected", "problems": problems}
        st.complete(segment_id, "script", payload, _usage(result))
        record_stage("script", "done", _usage(result))
        status, script_result = "done", payload
    if status != "done":
        return {"segment_id": segment_id, "status": status}

    distill_status, _ = st.result(segment_id, "distill")
    if distill_status != "done" and st.claim(segment_id, "distill", _owner(), ctx.job_id):
        distiller = ThinkingDistiller(gw, backend=settings.distill_backend, model=settings.distill_model)
        result = distiller.distill(plot, Script.model_validate(script_result["script"]))
        if not result.ok:
            return _failed(st, segment_id, "distill", result)
        st.complete(
            segment_id,
            "distill",
            {"thinking": result.value.model_dump(mode="json"), "reasoning_content": result.reasoning_content},
            _usage(result),
        )
        record_stage("distill", "done", _usage(result))
    return {"segment_id": segment_id, "status": "done"}


def _write_reject(ctx: RunContext, video: Video, segment: Segment, problems: list[str]) -> None:
    import json

    entry = {
        "video": video.uri,
        "video_id": video.id,
        "segment": segment.idx,
        "start_s": segment.start_s,
        "end_s": segment.end_s,
        "reasons": problems,
    }
    # named by video id (never by the source's name): any key or file name is safe here, local or bucket
    write_text(
        join(ctx.out_dir, "rejects", f"{video.id}_{segment.idx:04d}.json"), json.dumps(entry, indent=2)
    )


@ray.remote(num_cpus=0.25, max_retries=2)
def build_records(ctx: RunContext, video_id: str) -> list[tuple[int, str]]:
    """Records of every finished, not yet exported segment of a video, with names resolved now."""
    manager, st = cpm(ctx), store(ctx)
    settings = gateway(ctx.db_url).settings
    version = ctx.pipeline_version(settings)
    out = []
    with database(ctx.db_url).sessions() as s:
        video = s.get(Video, video_id)
    if not st.chain_complete(video.scope):  # names are not final yet: the driver asks again when they are
        log.warning("video %s: its scope's memory chain is not complete; no records yet", video_id)
        return out
    gaps = [MemoryGap(video_id=v, segment_index=i) for v, i in st.memory_gaps(video.scope)]
    with database(ctx.db_url).sessions() as s:
        segments = s.scalars(select(Segment).where(Segment.video_id == video_id).order_by(Segment.idx)).all()
        runs = s.scalars(select(StageRun).where(StageRun.segment_id.in_([seg.id for seg in segments]))).all()
    by_segment: dict[int, dict[str, StageRun]] = {}
    for run in runs:
        by_segment.setdefault(run.segment_id, {})[run.stage] = run
    resolve = manager.resolver(video.scope)  # one snapshot of the memory, with this video's names final
    for segment in segments:
        stages = by_segment.get(segment.id, {})
        if any(stages.get(k) is None or stages[k].status != "done" for k in ("plot", "script", "distill")):
            continue
        if stages.get("export") is not None and stages["export"].status == "done":
            continue
        plot = NextSegmentPlot.model_validate(stages["plot"].result["answer"])
        record = build_record(
            job_id=ctx.job_id,
            pipeline_version=version,
            video=RecordVideo(
                uri=video.uri,
                video_id=video.id,
                start_s=segment.start_s,
                end_s=segment.end_s,
                proxy_uri=segment.proxy_uri,
                series=None if video.scope == video.id else video.scope,
                episode=video.episode,
                segment_index=segment.idx,
            ),
            plot=plot,
            code_map=stages["plot"].result.get("code_map", {}),
            script=Script.model_validate(stages["script"].result["script"]),
            thinking=DistilledThinking.model_validate(stages["distill"].result["thinking"]),
            reasoning_content=stages["distill"].result.get("reasoning_content"),
            stages={k: StageUsage.model_validate(r) for k, r in stages.items() if k != "export"},
            resolve=resolve,
            memory_gaps=gaps,
        )
        out.append((segment.id, record.model_dump_json()))
    return out
