"""The Ray tasks of one run. Each is idempotent: it looks at the stage state first and skips finished work."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import ray

from annotator.gateway.base import ModelCallError
from annotator.media import MediaError, probe
from annotator.records import UnresolvedCodes, build_record
from annotator.schemas.provenance import Provenance
from annotator.schemas.record import MemoryGap, RecordVideo
from annotator.schemas.stage_results import DistillResult, PlotResult, ScriptResult
from profiles_db.outputs import output_key
from profiles_db.stages import MODEL_STAGES, RunStatus, Stage, VideoStatus
from workers import stage_steps as steps
from workers.context import RunContext, VideoSource, cpm, gateway, patience, store
from workers.fetch import (
    ensure_proxy,
    local_copy,
    local_proxy,
    proxy_present,
    proxy_sha256,
    release_copy,
)
from workers.metrics import record_video
from workers.results import SKIPPED, PreparedVideo, SegmentOutcome
from workers.splitter import ProxyBatch, SplitSettings, split_video
from workers.splitter.proxy_check import proxy_problem
from workers.storage import cache_root, inside, located

log = logging.getLogger(__name__)


def owner() -> str:
    """The lease owner: the Ray task id, which a retry of the task keeps (so a task re-run after its node
    died takes its own lease back at once); host:pid outside Ray."""
    try:
        task_id = ray.get_runtime_context().get_task_id()
    except Exception:  # not inside a Ray task
        task_id = None
    return f"task:{task_id}" if task_id else f"{socket.gethostname()}:{os.getpid()}"


# Every task waits out a database outage and then does its work again (profiles_db/outage.py): each is
# idempotent, and an answer paid while the database was away waits in the journal, so nothing is paid twice.


@ray.remote(num_cpus=1, max_retries=2)
def prepare_video(ctx: RunContext, video: VideoSource) -> PreparedVideo:
    """Probe, split at shot cuts outside dialogue (one decode pass) and cut all proxies in one ffmpeg run. A bad
    input fails only itself.

    A video split before keeps its segments (record ids stay stable, no detection runs again); only its missing
    or broken proxies are cut again. A done video is skipped, after checking its proxies are still there."""
    return patience(ctx).call(lambda: _prepare_video(ctx, video), f"splitting {video.uri}")


def _prepare_video(ctx: RunContext, video: VideoSource) -> PreparedVideo:
    st = store(ctx)
    status = st.register_video(
        video.video_id, video.uri, video.scope or video.video_id, video.episode, ctx.job_id
    )
    stored = st.segment_spans(video.video_id)
    if status == VideoStatus.DONE and all(proxy_present(located(uri, ctx.out_dir)) for _, uri in stored):
        return _done_before(ctx, st, video)
    path = None
    try:
        path = local_copy(video)  # a bucket object is downloaded to the local cache first
        proxies = _split_and_cut(st, ctx, video, path, [span for span, _ in stored])
        if status == VideoStatus.DONE:  # its proxies are back (or cut for this output); no model work
            return _done_before(ctx, st, video)
        segment_ids = st.save_segments(video.video_id, proxies)
        st.set_video(video.video_id, status=VideoStatus.SPLIT)
        record_video(VideoStatus.SPLIT)
        return PreparedVideo(video_id=video.video_id, ok=True, segments=segment_ids)
    except MediaError as exc:
        if status == VideoStatus.DONE:  # its records are written; a source gone since then does not undo that
            log.warning("%s: proxies missing and cannot be cut again: %s", video.uri, exc)
            return _done_before(ctx, st, video).model_copy(update={"warning": str(exc)})
        st.set_video(video.video_id, status=VideoStatus.FAILED, error=str(exc))
        record_video(VideoStatus.FAILED)
        return PreparedVideo(video_id=video.video_id, ok=False, error=str(exc))
    finally:
        release_copy(video, path)


def _done_before(ctx: RunContext, st, video: VideoSource) -> PreparedVideo:
    """A video done before, by this job or another sharing the database: no model work, but this output may
    still lack its records."""
    missing = st.exportable(video.video_id, output_key(ctx.out_dir, ctx.db_url))
    return PreparedVideo(video_id=video.video_id, ok=True, skipped=True, records_missing=bool(missing))


def _split_and_cut(st, ctx: RunContext, video: VideoSource, path, stored: list[tuple[float, float]]):
    """Split a new video (a resumed one keeps its `stored` spans and samples the picture transform again) and
    cut its proxies; the analysis pass's intermediate lives in a scratch folder until they are cut."""
    split = ctx.split
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
    proxy of the whole video, addressed by offsets when the stages send it (see stage_steps.segment_input)."""
    proxy_settings = split.proxy
    if has_audio is None:  # a resumed video: its proxies must still carry the sound its source has
        has_audio = probe(path, name=video.uri).has_audio

    def fits(start_s: float, end_s: float) -> Callable[[Path], str | None]:
        return lambda made: proxy_problem(made, start_s, end_s, audio=has_audio, fps=proxy_settings.fps)

    if split.proxy_mode == "offsets":
        tag = Provenance(
            video_id=video.video_id,
            source_uri=video.uri,
            segment_index=0,
            start_s=spans[0][0],
            end_s=spans[-1][1],
        )
        with ProxyBatch(path, [tag], proxy_settings, transform, has_audio, whole) as batch:
            uri = ensure_proxy(
                ctx.out_dir,
                video.video_id,
                0,
                lambda target: batch.make(0, target),
                fits(tag.start_s, tag.end_s),
            )
        return [(start_s, end_s, inside(uri, ctx.out_dir)) for start_s, end_s in spans]
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
                fits(tag.start_s, tag.end_s),
            )
            # stored relative to the output: a moved output resumes where it is now
            proxies.append((tag.start_s, tag.end_s, inside(proxy_uri, ctx.out_dir)))
    return proxies


@ray.remote(num_cpus=0.25, max_retries=2)
def reason_plot(ctx: RunContext, segment_id: int, chain_index: int) -> SegmentOutcome:
    """Plot reasoning of one segment; the driver calls these strictly in order within a scope."""
    return patience(ctx).call(
        lambda: _reason_plot(ctx, segment_id, chain_index), f"segment {segment_id}'s plot"
    )


def _reason_plot(ctx: RunContext, segment_id: int, chain_index: int) -> SegmentOutcome:
    st = store(ctx)
    # wait out a dead worker's lease: the next segment's plot must not run before this one's
    if st.claim_waiting(segment_id, Stage.PLOT, owner(), ctx.job_id) != "claimed":
        status, _ = st.result(segment_id, Stage.PLOT)
        return SegmentOutcome(segment_id=segment_id, status=status, stage=Stage.PLOT)
    ask, cache = steps.plot_ask(ctx, segment_id, chain_index)
    return steps.finish_plot(ctx, segment_id, gateway(ctx).ask(ask), cache)


@ray.remote(num_cpus=0.25, max_retries=2)
def annotate_segment(ctx: RunContext, segment_id: int, distill: bool = True) -> SegmentOutcome:
    """Script generation + quality gates + thinking distillation for a segment whose plot is done (the script
    only, when `distill` is False: its distillation goes in a batch)."""
    return patience(ctx).call(
        lambda: _annotate_segment(ctx, segment_id, distill), f"segment {segment_id}'s script"
    )


def _annotate_segment(ctx: RunContext, segment_id: int, distill: bool) -> SegmentOutcome:
    st = store(ctx)
    plot_status, stored_plot = st.result(segment_id, Stage.PLOT)
    if plot_status != RunStatus.DONE:
        return SegmentOutcome(segment_id=segment_id, status=SKIPPED, reason=f"plot is {plot_status}")
    plot = PlotResult.model_validate(stored_plot)
    # A stage another live worker holds (a dead run's task not yet reaped, another job annotating the same
    # video) is waited for, then read: it ends done or failed, never "running" in this run's summary.
    status, script = _stored_script(st, segment_id)
    if status not in (RunStatus.DONE, RunStatus.REJECTED):
        if st.claim_waiting(segment_id, Stage.SCRIPT, owner(), ctx.job_id) == "claimed":
            ask = steps.script_ask(ctx, segment_id, plot)
            outcome, script = steps.finish_script(ctx, segment_id, gateway(ctx).ask(ask), plot)
            if outcome is not None:
                return outcome
            status = RunStatus.DONE
        else:
            status, script = _stored_script(st, segment_id)
    if status != RunStatus.DONE or not distill:
        return SegmentOutcome(segment_id=segment_id, status=status)
    distill_status, _ = st.result(segment_id, Stage.DISTILL)
    if distill_status == RunStatus.DONE:
        return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)
    if st.claim_waiting(segment_id, Stage.DISTILL, owner(), ctx.job_id) == "claimed":
        ask = steps.distill_ask(ctx, plot, script)
        return steps.finish_distill(ctx, segment_id, gateway(ctx).ask(ask))
    distill_status, _ = st.result(segment_id, Stage.DISTILL)
    return SegmentOutcome(segment_id=segment_id, status=distill_status, stage=Stage.DISTILL)


def _stored_script(st, segment_id: int) -> tuple[str, ScriptResult | None]:
    status, stored = st.result(segment_id, Stage.SCRIPT)
    return status, ScriptResult.model_validate(stored) if status == RunStatus.DONE else None


@ray.remote(num_cpus=0.25, max_retries=2)
def build_records(ctx: RunContext, video_id: str) -> list[tuple[int, str]]:
    """Records of every finished, not yet exported segment of a video, with names resolved now."""
    return patience(ctx).call(lambda: _build_records(ctx, video_id), f"the records of video {video_id}")


def _build_records(ctx: RunContext, video_id: str) -> list[tuple[int, str]]:
    manager, st = cpm(ctx), store(ctx)
    version = ctx.pipeline_version()
    video = st.video(video_id)
    if not st.chain_complete(video.scope):  # names are not final yet: the driver asks again when they are
        log.warning("video %s: its scope's memory chain is not complete; no records yet", video_id)
        return []
    gaps = [MemoryGap(video_id=v, segment_index=i) for v, i in st.memory_gaps(video.scope)]
    resolve = manager.resolver(video.scope)  # one snapshot of the memory, with this video's names final
    out = []
    for segment, runs in st.exportable(video_id, output_key(ctx.out_dir, ctx.db_url)):
        plot = PlotResult.model_validate(runs[Stage.PLOT].result)
        script = ScriptResult.model_validate(runs[Stage.SCRIPT].result)
        distill = DistillResult.model_validate(runs[Stage.DISTILL].result)
        try:
            record = build_record(
                job_id=ctx.job_id,
                pipeline_version=version,
                video=RecordVideo(
                    uri=video.uri,
                    video_id=video.id,
                    start_s=segment.start_s,
                    end_s=segment.end_s,
                    # relative to the output, so the output can be moved whole (rsync to a training cluster)
                    proxy_uri=segment.proxy_uri
                    and inside(located(segment.proxy_uri, ctx.out_dir), ctx.out_dir),
                    series=None if video.scope == video.id else video.scope,
                    episode=video.episode,
                    segment_index=segment.idx,
                ),
                plot=plot.plot(),
                code_map=plot.code_map,
                script=script.script,
                thinking=distill.thinking,
                reasoning_content=distill.reasoning_content,
                stages={stage.value: runs[stage].usage for stage in MODEL_STAGES},
                resolve=resolve,
                memory_gaps=gaps,
            )
        except UnresolvedCodes as exc:  # never written with a code that means nobody; the failure says why
            log.error("segment %s of video %s: %s", segment.idx, video_id, exc)
            st.fail(segment.id, Stage.EXPORT, str(exc), outcome="invalid_output")
            continue
        out.append((segment.id, record.model_dump_json()))
    _release_uploads(ctx, {located(uri, ctx.out_dir) for _, uri in st.segment_spans(video_id) if uri})
    return out


def _release_uploads(ctx: RunContext, proxy_uris: set[str]) -> None:
    """The video's stages are final: its uploads are freed (a later resume that needs one uploads it again)."""
    shas = {proxy_sha256(local_proxy(uri)) for uri in proxy_uris if proxy_present(uri)}
    try:
        released = gateway(ctx).release_uploads(shas)
    except ModelCallError as exc:  # the files expire by themselves in 48 h; the records do not wait on this
        log.warning("could not delete uploads of finished videos: %s", exc)
        return
    if released:
        log.info("deleted %d uploads of a finished video", released)
