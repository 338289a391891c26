"""Each model stage of a segment in two steps: its request (`*_ask`) and what its answer does (`finish_*`).

A synchronous task (workers/tasks.py) asks and finishes in one go; a batch task (workers/batch_tasks.py) asks
for many segments, sends the requests as one provider batch and finishes each with its item's answer. Both go
through these functions, so a segment's result is the same whichever way its answer came.
"""

from __future__ import annotations

import json
import logging

from annotator.gateway import StageAsk, StructuredResult
from annotator.gateway.base import Media
from annotator.gateway.context_cache import VideoCache
from annotator.media import MediaError, read_provenance
from annotator.schemas import CharacterProfile
from annotator.schemas.stage_results import DistillResult, PlotResult, ScriptResult
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
from profiles_db.stages import RunStatus, Stage, StageUsage
from profiles_db.stages.states import GATE_REJECTED, OUT_OF_ORDER
from workers import video_cache
from workers.context import RunContext, cpm, gateway, store
from workers.fetch import local_proxy, proxy_sha256
from workers.metrics import record_stage
from workers.results import SegmentOutcome
from workers.splitter.proxy_check import measure
from workers.storage import join, located, write_text

log = logging.getLogger(__name__)


def usage_of(result: StructuredResult) -> StageUsage:
    return StageUsage(
        model=result.model,
        prompt_version=result.prompt_version,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost_usd=result.usage.cost_usd,
        tier=result.usage.tier if result.usage.calls else None,
        cached_tokens=result.usage.cached_tokens,
        thinking_tokens=result.usage.thinking_tokens,
    )


def failed(st, segment_id: int, stage: Stage, result: StructuredResult) -> SegmentOutcome:
    """Store a stage's failure with its specific outcome and reason; the run goes on with other segments."""
    st.fail(
        segment_id, stage, result.error or f"{stage} failed", outcome=result.outcome, usage=usage_of(result)
    )
    record_stage(stage, RunStatus.FAILED, usage_of(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.FAILED, stage=stage, error=result.error)


def segment_input(segment: Segment, index: int, out_dir: str) -> SegmentInput:
    """The segment and its proxy. A proxy covering more than the segment (offsets mode: one per video) is
    narrowed by start/end offsets, seconds within the proxy file; the model's times then count from the start
    offset, i.e. they are segment-relative as with a proxy of its own (docs/splitting.md)."""
    proxy = local_proxy(located(segment.proxy_uri, out_dir))  # stored relative to the output
    media = Media(path=proxy, sha256=proxy_sha256(proxy), resolution=None)
    shown = read_provenance(proxy)
    if shown is not None and (
        abs(shown.start_s - segment.start_s) > 1e-3 or abs(shown.end_s - segment.end_s) > 1e-3
    ):
        media.start_offset_s = round(segment.start_s - shown.start_s, 3)
        media.end_offset_s = round(segment.end_s - shown.start_s, 3)
    return SegmentInput(index=index, start_s=segment.start_s, end_s=segment.end_s, media=media)


def shown_length(segment: Segment, out_dir: str) -> float | None:
    """Seconds of picture the models were sent for the segment: its proxy's measured length, or the part of the
    whole video's proxy its offsets select (None when the proxy cannot be read: the stages failed on it)."""
    media = segment_input(segment, 0, out_dir).media
    try:
        length = measure(media.path).video_s
    except MediaError:
        return None
    start = media.start_offset_s or 0.0
    end = length if media.end_offset_s is None else min(length, media.end_offset_s)
    return max(0.0, end - start)


# -- plot ---------------------------------------------------------------------------------------------------
def plot_ask(ctx: RunContext, segment_id: int, chain_index: int) -> tuple[StageAsk, VideoCache | None]:
    """The plot's request, conditioned on the memory as it is now (the previous segment's plot applied), and
    the context cache made for it and the script when one pays."""
    st, gw = store(ctx), gateway(ctx)
    segment, video = st.segment(segment_id)
    reasoner = PlotReasoner(gw, backend=gw.settings.plot_backend, model=gw.settings.plot_model)
    context = cpm(ctx).context(video.scope, segment_id, token_budget=ctx.context_token_budget)
    shown = segment_input(segment, chain_index, ctx.out_dir)
    cache = video_cache.open_for_plot(gw, shown.media, shown.duration_s, bool(video.has_audio))
    if cache is not None:  # made for the plot and the script; its price is the plot stage's
        shown = shown.model_copy(update={"media": shown.media.model_copy(update={"cache_name": cache.name})})
    return reasoner.ask(shown, context), cache


def finish_plot(
    ctx: RunContext, segment_id: int, result: StructuredResult, cache: VideoCache | None
) -> SegmentOutcome:
    """Apply the plot to the CPM and store it, or store why it failed."""
    st, gw = store(ctx), gateway(ctx)
    if cache is not None:
        result.usage.cost_usd += cache.cost_usd
    if not result.ok:
        video_cache.close(gw, cache.model_dump() if cache is not None else None)
        return failed(st, segment_id, Stage.PLOT, result)
    _, video = st.segment(segment_id)
    try:
        report = cpm(ctx).apply(video.scope, segment_id, result.value)
    except ChainOrderError as exc:  # the answer stays in the response cache: a resume in order pays nothing
        st.fail(segment_id, Stage.PLOT, str(exc), outcome=OUT_OF_ORDER, usage=usage_of(result))
        return SegmentOutcome(
            segment_id=segment_id, status=RunStatus.FAILED, stage=Stage.PLOT, error=str(exc)
        )
    for warning in report.warnings:
        log.warning("segment %s: %s", segment_id, warning)
    # script_profiles: the profiles the script will be shown, as the memory stands right after this plot: later
    # plots of the chain may run before this segment's script (name someone, merge two), and a script prompt that
    # saw them would depend on scheduling. The scope's next plot waits for this task, so nothing has moved yet.
    stored = PlotResult(
        answer=result.value.model_dump(mode="json"),
        code_map=report.code_map,
        warnings=report.warnings,
        video_cache=cache.model_dump() if cache is not None else None,
        script_profiles=_placed_profiles(ctx, video.scope, report.code_map),
    )
    st.complete(segment_id, Stage.PLOT, stored.model_dump(mode="json"), usage_of(result))
    record_stage(Stage.PLOT, RunStatus.DONE, usage_of(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)


# -- script -------------------------------------------------------------------------------------------------
# The profiles a script is shown, kept in its plot's result when the plot is applied. A script reads its
# segment's memory as its plot left it, so that its prompt does not depend on when its task happens to start
# (after how many later plots of the chain): a paused and resumed job, a slow worker or a budget that holds the
# script back give the same script, and the same record, as a run where it started at once.


def _placed_profiles(ctx: RunContext, scope: str, code_map: dict[str, str]) -> list[CharacterProfile]:
    """The current profiles of the characters a plot placed, in the order it named them."""
    resolve = cpm(ctx).resolver(scope)
    return [p for p in (resolve(c) for c in dict.fromkeys(code_map.values())) if p]


def script_ask(ctx: RunContext, segment_id: int, stored: PlotResult) -> StageAsk:
    """The script's request: the video (or the plot's cache of it), the plot as a synopsis, and the profiles
    of the characters the plot placed."""
    st, gw = store(ctx), gateway(ctx)
    segment, video = st.segment(segment_id)
    plot, code_map = stored.plot(), stored.code_map
    profiles = stored.script_profiles  # the memory as the plot left it (not as later plots changed it)
    if profiles is None:  # a plot stored before the snapshot was kept
        profiles = _placed_profiles(ctx, video.scope, code_map)
    writer = ScriptWriter(gw, backend=gw.settings.script_backend, model=gw.settings.script_model)
    shown = segment_input(segment, segment.idx, ctx.out_dir)
    shown = shown.model_copy(update={"media": video_cache.for_script(gw, stored.video_cache, shown.media)})
    return writer.ask(shown, profiles, synopsis(plot, code_map))


def finish_script(
    ctx: RunContext, segment_id: int, result: StructuredResult, stored_plot: PlotResult
) -> tuple[SegmentOutcome | None, ScriptResult | None]:
    """Quality gates, then store the script (or its rejection, or its failure); the plot's cache is closed, as
    the script is final or failed for this run. Returns (an outcome that ends the segment's work here, or None;
    the stored result)."""
    st, gw = store(ctx), gateway(ctx)
    video_cache.close(gw, stored_plot.video_cache)
    if not result.ok:
        return failed(st, segment_id, Stage.SCRIPT, result), None
    segment, video = st.segment(segment_id)
    resolve = cpm(ctx).resolver(video.scope)
    problems = QualityGates().check(
        result.value,
        segment.end_s - segment.start_s,
        lambda c: resolve(c) is not None,
        shown_s=shown_length(segment, ctx.out_dir),
    )
    stored = ScriptResult(script=result.value)
    payload = stored.model_dump(mode="json")
    if problems:
        st.fail(
            segment_id,
            Stage.SCRIPT,
            "; ".join(problems),
            outcome=GATE_REJECTED,
            rejected=True,
            usage=usage_of(result),
            result=payload,
        )
        _write_reject(ctx, video, segment, problems)
        record_stage(Stage.SCRIPT, RunStatus.REJECTED, usage_of(result))
        rejected = SegmentOutcome(
            segment_id=segment_id, status=RunStatus.REJECTED, stage=Stage.SCRIPT, problems=problems
        )
        return rejected, stored
    st.complete(segment_id, Stage.SCRIPT, payload, usage_of(result))
    record_stage(Stage.SCRIPT, RunStatus.DONE, usage_of(result))
    return None, stored


def _write_reject(ctx: RunContext, video: Video, segment: Segment, problems: list[str]) -> None:
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


# -- distill ------------------------------------------------------------------------------------------------
def distill_ask(ctx: RunContext, stored_plot: PlotResult, stored_script: ScriptResult) -> StageAsk:
    gw = gateway(ctx)
    distiller = ThinkingDistiller(gw, backend=gw.settings.distill_backend, model=gw.settings.distill_model)
    return distiller.ask(stored_plot.plot(), stored_script.script)


def finish_distill(ctx: RunContext, segment_id: int, result: StructuredResult) -> SegmentOutcome:
    st = store(ctx)
    if not result.ok:
        return failed(st, segment_id, Stage.DISTILL, result)
    st.complete(
        segment_id,
        Stage.DISTILL,
        DistillResult(thinking=result.value, reasoning_content=result.reasoning_content).model_dump(
            mode="json"
        ),
        usage_of(result),
    )
    record_stage(Stage.DISTILL, RunStatus.DONE, usage_of(result))
    return SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)
