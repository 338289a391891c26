"""The Ray tasks of one run. Each is idempotent: it looks at the stage state first and skips finished work."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path

import ray

from annotator.gateway.base import Media
from annotator.media import MediaError, probe, read_provenance
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
from profiles_db.models import Segment, Video
from profiles_db.stages import MODEL_STAGES, RunStatus, Stage, StageUsage, VideoStatus
from workers import video_cache
from workers.context import RunContext, VideoSource, cpm, gateway, store
from workers.fetch import (
    ensure_proxy,
    local_copy,
    local_proxy,
    proxy_present,
    proxy_sha256,
    release_copy,
)
from workers.metrics import record_stage, record_video
from workers.results import SKIPPED, PreparedVideo, SegmentOutcome
from workers.splitter import ProxyBatch, SplitSettings, split_video
from workers.storage import cache_root, join, write_text

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
        tier=result.usage.tier if result.usage.calls else None,
        cached_tokens=result.usage.cached_tokens,
    )


def _failed(st, segment_id: int, stage: Stage, result) -> SegmentOutcome:
    """Store a stage's failure with its specific outcome and reason; the run goes on with other segments."""
    st.fail(
        segment_id, stage, result.error or f"{stage} failed", outcome=result.outcome, usage=_usage(result)
    )
    record_stage(stage, RunStatus.FAILED, _usage(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.FAILED, stage=stage, error=result.error)


@ray.remote(num_cpus=1, max_retries=2)
def prepare_video(ctx: RunContext, video: VideoSource) -> PreparedVideo:
    """Probe, split at shot cuts outside dialogue (one decode pass) and cut all proxies in one ffmpeg run. A bad
    input fails only itself.

    A video split before keeps its segments (record ids stay stable, no detection runs again); only its missing
    or broken proxies are cut again. A done video is skipped, after checking its proxies are still there."""
    st = store(ctx)
    status = st.register_video(
        video.video_id, video.uri, video.scope or video.video_id, video.episode, ctx.job_id
    )
    stored = st.segment_spans(video.video_id)
    if status == VideoStatus.DONE and all(proxy_present(uri) for _, uri in stored):
        return PreparedVideo(video_id=video.video_id, ok=True, skipped=True)
    path = None
    try:
        path = local_copy(video)  # a bucket object is downloaded to the local cache first
        proxies = _split_and_cut(st, ctx, video, path, [span for span, _ in stored])
        if status == VideoStatus.DONE:  # its proxies are back; nothing else to do
            return PreparedVideo(video_id=video.video_id, ok=True, skipped=True)
        segment_ids = st.save_segments(video.video_id, proxies)
        st.set_video(video.video_id, status=VideoStatus.SPLIT)
        record_video(VideoStatus.SPLIT)
        return PreparedVideo(video_id=video.video_id, ok=True, segments=segment_ids)
    except MediaError as exc:
        if status == VideoStatus.DONE:  # its records are written; a source gone since then does not undo that
            log.warning("%s: proxies missing and cannot be cut again: %s", video.uri, exc)
            return PreparedVideo(video_id=video.video_id, ok=True, skipped=True, warning=str(exc))
        st.set_video(video.video_id, status=VideoStatus.FAILED, error=str(exc))
        record_video(VideoStatus.FAILED)
        return PreparedVideo(video_id=video.video_id, ok=False, error=str(exc))
    finally:
        release_copy(video, path)


def _split_and_cut(st, ctx: RunContext, video: VideoSource, path, stored: list[tuple[float, float]]):
    """Split a new video (a resumed one keeps its `stored` spans and samples the picture transform again) and
    cut its proxies; the analysis pass's intermediate lives in a scratch folder until they are cut."""
    split = SplitSettings()  # V2S_SPLIT_… environment variables; proxy size and rate from the run
    proxy = split.proxy.model_copy(update={"height": ctx.proxy_height, "fps": ctx.proxy_fps})
    split = split.model_copy(update={"proxy": proxy})
    scratch = cache_root() / "split"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="v2s-split-", dir=scratch) as work:
        if stored:
            spans, transform, has_audio, whole = stored, None, None, None
        else:
            spans, transform, has_audio, whole = _split(st, ctx, video, path, split, Path(work))
        return _cut_proxies(ctx, video, path, spans, split, transform, has_audio, whole)


def _split(st, ctx: RunContext, video: VideoSource, path, split: SplitSettings, work: Path):
    """Probe a video seen for the first time, save what the probe found, and plan its segments: their spans, and
    the picture transform, audio presence and intermediate the proxies are cut with."""
    info = probe(path, name=video.uri)
    st.set_video(
        video.video_id,
        duration_s=info.duration_s,
        fps=info.fps,
        width=info.width,
        height=info.height,
        has_audio=info.has_audio,
    )
    result = split_video(path, info, ctx.max_segment_s, split, name=video.uri, workdir=work)
    spans = [(plan.start_s, plan.end_s) for plan in result.plans]
    return spans, result.transform, info.has_audio, result.intermediate


def _cut_proxies(
    ctx, video, path, spans, split, transform, has_audio, whole
) -> list[tuple[float, float, str]]:
    """OUT/proxies/… locally or in the bucket, whole ones reused; the first missing or broken one cuts them all
    in one ffmpeg run. Returns (start, end, proxy URI) per segment. In offsets mode every segment shares one
    proxy of the whole video, addressed by offsets when the stages send it (see _segment_input)."""
    proxy_settings = split.proxy
    if split.proxy_mode == "offsets":
        tag = Provenance(
            video_id=video.video_id,
            source_uri=video.uri,
            segment_index=0,
            start_s=spans[0][0],
            end_s=spans[-1][1],
        )
        with ProxyBatch(path, [tag], proxy_settings, transform, has_audio, whole) as batch:
            uri = ensure_proxy(ctx.out_dir, video.video_id, 0, lambda target: batch.make(0, target))
        return [(start_s, end_s, uri) for start_s, end_s in spans]
    tags = [
        Provenance(
            video_id=video.video_id, source_uri=video.uri, segment_index=idx, start_s=start_s, end_s=end_s
        )
        for idx, (start_s, end_s) in enumerate(spans, start=1)
    ]
    proxies = []
    with ProxyBatch(path, tags, proxy_settings, transform, has_audio, whole) as batch:
        for tag in tags:
            proxy_uri = ensure_proxy(
                ctx.out_dir,
                video.video_id,
                tag.segment_index,
                lambda target, idx=tag.segment_index: batch.make(idx, target),
            )
            proxies.append((tag.start_s, tag.end_s, proxy_uri))
    return proxies


def _segment_input(segment: Segment, index: int) -> SegmentInput:
    """The segment and its proxy. A proxy covering more than the segment (offsets mode: one per video) is
    narrowed by start/end offsets, seconds within the proxy file; the model's times then count from the start
    offset, i.e. they are segment-relative as with a proxy of its own (docs/splitting.md)."""
    proxy = local_proxy(segment.proxy_uri)
    media = Media(path=proxy, sha256=proxy_sha256(proxy), resolution=None)
    shown = read_provenance(proxy)
    if shown is not None and (
        abs(shown.start_s - segment.start_s) > 1e-3 or abs(shown.end_s - segment.end_s) > 1e-3
    ):
        media.start_offset_s = round(segment.start_s - shown.start_s, 3)
        media.end_offset_s = round(segment.end_s - shown.start_s, 3)
    return SegmentInput(index=index, start_s=segment.start_s, end_s=segment.end_s, media=media)


@ray.remote(num_cpus=0.25, max_retries=2)
def reason_plot(ctx: RunContext, segment_id: int, chain_index: int) -> SegmentOutcome:
    """Plot reasoning of one segment; the driver calls these strictly in order within a scope."""
    st, manager = store(ctx), cpm(ctx)
    segment, video = st.segment(segment_id)
    # wait out a dead worker's lease: the next segment's plot must not run before this one's
    if st.claim_waiting(segment_id, Stage.PLOT, _owner(), ctx.job_id) != "claimed":
        status, _ = st.result(segment_id, Stage.PLOT)
        return SegmentOutcome(segment_id=segment_id, status=status, stage=Stage.PLOT)
    settings = gateway(ctx.db_url).settings
    reasoner = PlotReasoner(gateway(ctx.db_url), backend=settings.plot_backend, model=settings.plot_model)
    context = manager.context(video.scope, segment_id, token_budget=ctx.context_token_budget)
    shown = _segment_input(segment, chain_index)
    cache = video_cache.open_for_plot(
        gateway(ctx.db_url), shown.media, shown.duration_s, bool(video.has_audio)
    )
    if cache is not None:  # made for the plot and the script; its price is the plot stage's
        shown = shown.model_copy(update={"media": shown.media.model_copy(update={"cache_name": cache.name})})
    result = reasoner.reason(shown, context)
    if cache is not None:
        result.usage.cost_usd += cache.cost_usd
    if not result.ok:
        video_cache.close(gateway(ctx.db_url), {video_cache.RESULT_KEY: cache and cache.model_dump()})
        return _failed(st, segment_id, Stage.PLOT, result)
    try:
        report = manager.apply(video.scope, segment_id, result.value)
    except ChainOrderError as exc:  # the answer stays in the response cache: a resume in order pays nothing
        st.fail(segment_id, Stage.PLOT, str(exc), outcome="out_of_order", usage=_usage(result))
        return SegmentOutcome(
            segment_id=segment_id, status=RunStatus.FAILED, stage=Stage.PLOT, error=str(exc)
        )
    for warning in report.warnings:
        log.warning("segment %s: %s", segment_id, warning)
    st.complete(
        segment_id,
        Stage.PLOT,
        {
            "answer": result.value.model_dump(mode="json"),
            "code_map": report.code_map,
            "warnings": report.warnings,
            video_cache.RESULT_KEY: cache.model_dump() if cache is not None else None,
        },
        _usage(result),
    )
    record_stage(Stage.PLOT, RunStatus.DONE, _usage(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)


@ray.remote(num_cpus=0.25, max_retries=2)
def annotate_segment(ctx: RunContext, segment_id: int) -> SegmentOutcome:
    """Script generation + quality gates + thinking distillation for a segment whose plot is done."""
    st = store(ctx)
    plot_status, plot_result = st.result(segment_id, Stage.PLOT)
    if plot_status != RunStatus.DONE:
        return SegmentOutcome(segment_id=segment_id, status=SKIPPED, reason=f"plot is {plot_status}")
    plot = NextSegmentPlot.model_validate(plot_result["answer"])
    code_map: dict[str, str] = plot_result.get("code_map", {})
    status, script_result = st.result(segment_id, Stage.SCRIPT)
    if status not in (RunStatus.DONE, RunStatus.REJECTED) and st.claim(
        segment_id, Stage.SCRIPT, _owner(), ctx.job_id
    ):
        outcome, script_result = _write_script(ctx, segment_id, plot, code_map, plot_result)
        video_cache.close(gateway(ctx.db_url), plot_result)  # the script is final, or failed for this run
        if outcome is not None:
            return outcome
        status = RunStatus.DONE
    if status != RunStatus.DONE:
        return SegmentOutcome(segment_id=segment_id, status=status)
    distill_status, _ = st.result(segment_id, Stage.DISTILL)
    if distill_status != RunStatus.DONE and st.claim(segment_id, Stage.DISTILL, _owner(), ctx.job_id):
        script = Script.model_validate(script_result["script"])
        return _distill(ctx, segment_id, plot, script)
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)


def _write_script(
    ctx: RunContext, segment_id: int, plot: NextSegmentPlot, code_map: dict[str, str], plot_result: dict
) -> tuple[SegmentOutcome | None, dict | None]:
    """The claimed script stage: (an outcome that ends the segment's work here, or None; the stored result)."""
    st, gw = store(ctx), gateway(ctx.db_url)
    segment, video = st.segment(segment_id)
    resolve = cpm(ctx).resolver(video.scope)
    profiles = [p for p in (resolve(c) for c in dict.fromkeys(code_map.values())) if p]
    writer = ScriptWriter(gw, backend=gw.settings.script_backend, model=gw.settings.script_model)
    shown = _segment_input(segment, segment.idx)
    shown = shown.model_copy(update={"media": video_cache.for_script(gw, plot_result, shown.media)})
    result = writer.write(shown, profiles, synopsis(plot, code_map))
    if not result.ok:
        return _failed(st, segment_id, Stage.SCRIPT, result), None
    problems = QualityGates().check(
        result.value, segment.end_s - segment.start_s, lambda c: resolve(c) is not None
    )
    payload = {"script": result.value.model_dump(mode="json")}
    if problems:
        st.fail(
            segment_id,
            Stage.SCRIPT,
            "; ".join(problems),
            outcome="rejected",
            rejected=True,
            usage=_usage(result),
            result=payload,
        )
        _write_reject(ctx, video, segment, problems)
        record_stage(Stage.SCRIPT, RunStatus.REJECTED, _usage(result))
        rejected = SegmentOutcome(
            segment_id=segment_id, status=RunStatus.REJECTED, stage=Stage.SCRIPT, problems=problems
        )
        return rejected, payload
    st.complete(segment_id, Stage.SCRIPT, payload, _usage(result))
    record_stage(Stage.SCRIPT, RunStatus.DONE, _usage(result))
    return None, payload


def _distill(ctx: RunContext, segment_id: int, plot: NextSegmentPlot, script: Script) -> SegmentOutcome:
    """The claimed distill stage."""
    st, gw = store(ctx), gateway(ctx.db_url)
    distiller = ThinkingDistiller(gw, backend=gw.settings.distill_backend, model=gw.settings.distill_model)
    result = distiller.distill(plot, script)
    if not result.ok:
        return _failed(st, segment_id, Stage.DISTILL, result)
    st.complete(
        segment_id,
        Stage.DISTILL,
        {"thinking": result.value.model_dump(mode="json"), "reasoning_content": result.reasoning_content},
        _usage(result),
    )
    record_stage(Stage.DISTILL, RunStatus.DONE, _usage(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)


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
    version = ctx.pipeline_version(gateway(ctx.db_url).settings)
    video = st.video(video_id)
    if not st.chain_complete(video.scope):  # names are not final yet: the driver asks again when they are
        log.warning("video %s: its scope's memory chain is not complete; no records yet", video_id)
        return []
    gaps = [MemoryGap(video_id=v, segment_index=i) for v, i in st.memory_gaps(video.scope)]
    resolve = manager.resolver(video.scope)  # one snapshot of the memory, with this video's names final
    out = []
    for segment, runs in st.exportable(video_id):
        plot, script, distill = (runs[stage].result for stage in MODEL_STAGES)
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
            plot=NextSegmentPlot.model_validate(plot["answer"]),
            code_map=plot.get("code_map", {}),
            script=Script.model_validate(script["script"]),
            thinking=DistilledThinking.model_validate(distill["thinking"]),
            reasoning_content=distill.get("reasoning_content"),
            stages={stage.value: runs[stage].usage for stage in MODEL_STAGES},
            resolve=resolve,
            memory_gaps=gaps,
        )
        out.append((segment.id, record.model_dump_json()))
    return out
