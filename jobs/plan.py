"""`v2s plan`: what a job will cost and how long it will take, before any model is asked.

The plan splits the job's videos for real (the same prepare step as `v2s run`, so the run that follows reuses
the segments and proxies) and prices every model stage of every segment:

- input tokens = the video's (the price table's documented rates: tokens per sampled frame at the stage's media
  resolution, per second of audio) + the prompt's text (prompt, character context, synopsis);
- output tokens per second of footage, and the prompt's text per call, are measured from the stages earlier
  runs in the same database finished; without any, documented defaults stand in (and the plan says so);
- thinking tokens (billed as output) per answer token: the ratio earlier runs measured where they recorded
  it (Gemini thoughtsTokenCount, OpenAI reasoning_tokens), else the catalog's assumption for the model;
  where earlier runs did not record it, their measured output already holds what thinking they were billed;
- dollars per tier from the price table: standard, flex, batch, and with each segment's video in a context
  cache for its plot and script calls (made once at the input price, read at the cached price, stored for
  the cache's TTL), as a run with V2S_CONTEXT_CACHE=1 pays it;
- wall time: the longest of the slowest scope's plot chain (its plots run one after another), the calls over
  the concurrency, and the calls and tokens over each model's quota;
- with a budget (`--budget-usd`): how many segments and videos it reaches, in the plan's order, at each
  segment's expected cost, keeping back the worst case of one task (a run stops when that no longer fits,
  workers/budget.py).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, Field

from annotator.gateway.context_cache import reads_cache
from annotator.pricing import TIERS, Price, PriceTable
from annotator.settings import ModelSettings, RateLimit
from profiles_db.stages import MODEL_STAGES, MeasuredStage, PlannedSegment, Stage
from workers.budget import call_bound

PLAN_FORMAT_VERSION = 1
VIDEO_STAGES = (Stage.PLOT, Stage.SCRIPT)  # the stages that watch the segment
# Without an earlier run to measure: prompt text per call and answer tokens per minute of footage, as the
# sample film's run gives them (order of magnitude only; one earlier run of similar footage replaces them).
DEFAULT_TEXT_TOKENS = {Stage.PLOT: 2500, Stage.SCRIPT: 2000, Stage.DISTILL: 3000}
DEFAULT_OUTPUT_PER_MIN = {Stage.PLOT: 700, Stage.SCRIPT: 1500, Stage.DISTILL: 900}


class PlanOptions(BaseModel):
    concurrency: int = Field(8, ge=1)  # model calls in flight at once (the run's V2S_MAX_IN_FLIGHT)
    # seconds one call takes at each tier (Flex answers in minutes: its documented target is 1–15); at
    # batch, one batch's turnaround (within 24 h, usually far less; an hour is a planning figure)
    latency_s: dict[str, float] = Field(
        default_factory=lambda: {"standard": 30.0, "flex": 180.0, "batch": 3600.0}
    )
    # how long a segment's cached video lives (None: V2S_CONTEXT_CACHE_TTL_S, what a run would use)
    cache_ttl_s: float | None = Field(None, gt=0)
    rate_limits: dict[str, RateLimit] | None = None  # None: the configured ones (V2S_RATE_LIMITS)
    tier: Literal["standard", "flex", "batch"] | None = None  # every stage at this tier, not its setting
    budget_usd: float | None = Field(None, gt=0)  # show how far this budget reaches (`Plan.budget`)
    context_tokens: int = Field(4000, ge=0)  # the job's context_token_budget (a call's worst case quotes it)


class BudgetReach(BaseModel):
    """How far a budget reaches: the segments (in the plan's order) whose expected cost fits in it with the
    worst case of one task kept back, and the videos all of whose segments do."""

    budget_usd: float
    segments: int
    videos: int
    expected_usd: float  # the expected cost of the segments reached
    task_worst_case_usd: float  # the largest bound of one task: a run stops when less than this is left


class StageEstimate(BaseModel):
    stage: Stage
    model: str
    tier: str  # the tier the stage is set to
    calls: int
    video_tokens: int
    text_tokens: int
    input_tokens: int
    output_tokens: int  # billed output: the answer and the thinking
    thinking_tokens: int = 0  # of output_tokens, the model's thinking
    thinking_basis: str = ""  # where the thinking estimate comes from (measured, the catalog's assumption)
    cost_usd: dict[str, float]  # tier → dollars
    cached_cost_usd: dict[str, float] | None = None  # the same with the video from a context cache
    basis: str  # where the text and output sizes come from
    price_source: str = (
        ""  # where the stage model's price comes from (the catalog and its version, V2S_PRICES)
    )


class PlanTotal(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: dict[str, float]  # every stage at that tier
    cached_cost_usd: dict[str, float]  # … with the videos in context caches where it pays
    configured_cost_usd: float  # at the tiers the stages are set to


class Plan(BaseModel):
    format_version: Literal[1] = PLAN_FORMAT_VERSION
    job: str
    source: str
    price_table: str  # the price table's version
    price_table_file: str | None = None  # V2S_PRICES_FILE, when the table is the user's file
    overridden: list[str] = Field(default_factory=list)  # models priced (or re-priced) by V2S_PRICES
    videos: int
    failed_videos: dict[str, str]
    segments: int
    footage_s: float
    stages: list[StageEstimate]
    total: PlanTotal
    wall_time_s: float
    wall_time_bound: str  # what limits it: the plot chain, concurrency, or a model's quota
    budget: BudgetReach | None = None  # with --budget-usd

    def usd_per_video_hour(self, tier: str = "standard") -> float:
        return self.total.cost_usd[tier] / (self.footage_s / 3600) if self.footage_s else 0.0


class _Rates(BaseModel):
    text_tokens: float
    output_per_s: float  # answer tokens per second of footage (thinking apart, where it is known)
    thinking_ratio: float  # thinking tokens per answer token
    basis: str
    thinking_basis: str


def _measured_rates(
    stage: Stage, history: list[MeasuredStage], table: PriceTable, resolution: str | None, price: Price
) -> _Rates:
    rows = [m for m in history if m.stage == stage]
    assumed = price.assumed_thinking_ratio or 0.0
    assumption = (
        f"catalog assumption ({assumed:g} per answer token)" if assumed else "none (the catalog: no thinking)"
    )
    if not rows:
        minutes = DEFAULT_OUTPUT_PER_MIN[stage]
        return _Rates(
            text_tokens=DEFAULT_TEXT_TOKENS[stage],
            output_per_s=minutes / 60,
            thinking_ratio=assumed,
            basis="defaults",
            thinking_basis=assumption,
        )
    seconds = sum(m.seconds for m in rows) or 1.0
    text = [
        max(0, m.input_tokens - _video_tokens(stage, table, m.seconds, m.has_audio, resolution)) for m in rows
    ]
    rates = _Rates(
        text_tokens=sum(text) / len(rows),
        output_per_s=sum(m.output_tokens for m in rows) / seconds,
        thinking_ratio=0.0,
        basis=f"measured over {len(rows)} earlier segments",
        # rows from before thinking was recorded: their output is what was billed, thinking included
        thinking_basis="in the measured output (earlier runs did not record it)",
    )
    reported = [m for m in rows if m.thinking_tokens is not None]
    if reported:  # the answer and the thinking apart, from the segments that recorded both
        answer = sum(m.output_tokens - m.thinking_tokens for m in reported)
        thinking = sum(m.thinking_tokens for m in reported)
        rates.output_per_s = answer / (sum(m.seconds for m in reported) or 1.0)
        rates.thinking_ratio = thinking / answer if answer > 0 else 0.0
        rates.thinking_basis = (
            f"measured ({rates.thinking_ratio:.2f} per answer token, {len(reported)} segments)"
        )
    return rates


def _video_tokens(
    stage: Stage, table: PriceTable, seconds: float, audio: bool, resolution: str | None
) -> int:
    if stage not in VIDEO_STAGES:
        return 0
    return table.media.video_tokens(seconds, has_audio=audio, resolution=resolution)


def estimate(
    job_id: str,
    source: str,
    segments: list[PlannedSegment],
    history: list[MeasuredStage],
    settings: ModelSettings,
    options: PlanOptions,
    failed_videos: dict[str, str] | None = None,
) -> Plan:
    """The plan of `segments` (pure: the database reads are the caller's)."""
    table = settings.price_table()
    stages = [_stage(stage, segments, history, settings, table, options) for stage in MODEL_STAGES]
    total = PlanTotal(
        calls=sum(s.calls for s in stages),
        input_tokens=sum(s.input_tokens for s in stages),
        output_tokens=sum(s.output_tokens for s in stages),
        cost_usd={t: round(sum(s.cost_usd[t] for s in stages), 6) for t in TIERS},
        cached_cost_usd={
            t: round(sum((s.cached_cost_usd or s.cost_usd)[t] for s in stages), 6) for t in TIERS
        },
        configured_cost_usd=round(sum(s.cost_usd[s.tier] for s in stages), 6),
    )
    wall, bound = _wall_time(segments, stages, settings, options)
    reach = None
    if options.budget_usd is not None:
        reach = budget_reach(options.budget_usd, segments, history, settings, options)
    return Plan(
        job=job_id,
        source=source,
        price_table=table.version,
        price_table_file=settings.prices_file,
        overridden=sorted(settings.prices),
        videos=len({s.video_id for s in segments}) + len(failed_videos or {}),
        failed_videos=failed_videos or {},
        segments=len(segments),
        footage_s=round(sum(s.end_s - s.start_s for s in segments), 3),
        stages=stages,
        total=total,
        wall_time_s=round(wall, 1),
        wall_time_bound=bound,
        budget=reach,
    )


def segment_costs(
    segments: list[PlannedSegment],
    history: list[MeasuredStage],
    settings: ModelSettings,
    options: PlanOptions,
) -> list[float]:
    """The expected dollars of each segment's three model stages at their tiers (the same rates as `_stage`)."""
    table = settings.price_table()
    costs = [0.0] * len(segments)
    for stage in MODEL_STAGES:
        model = getattr(settings, f"{stage}_model")
        resolution = getattr(settings, f"{stage}_media_resolution", None)
        price, tier = settings.price(model), options.tier or settings.tier(stage)
        rates = _measured_rates(stage, history, table, resolution, price)
        for i, s in enumerate(segments):
            seconds = s.end_s - s.start_s
            video = _video_tokens(stage, table, seconds, s.has_audio, resolution)
            answer = round(rates.output_per_s * seconds)
            output = answer + round(
                answer * rates.thinking_ratio
            )  # thinking is billed as output, as in _stage
            costs[i] += price.cost(round(video + rates.text_tokens), output, tier)
    return costs


def task_worst_case(segments: list[PlannedSegment], settings: ModelSettings, options: PlanOptions) -> float:
    """The largest bound of one task over `segments`: a plot, or a script with its distillation."""
    worst = 0.0
    for s in segments:
        bound = {
            stage: call_bound(
                settings,
                stage,
                s.end_s - s.start_s,
                s.has_audio,
                options.tier or settings.call_tier(stage),
                options.context_tokens,
            )
            for stage in MODEL_STAGES
        }
        worst = max(worst, bound[Stage.PLOT], bound[Stage.SCRIPT] + bound[Stage.DISTILL])
    return worst


def budget_reach(
    budget_usd: float,
    segments: list[PlannedSegment],
    history: list[MeasuredStage],
    settings: ModelSettings,
    options: PlanOptions,
) -> BudgetReach:
    """How many of `segments`, in order, `budget_usd` pays for (see BudgetReach)."""
    worst = task_worst_case(segments, settings, options)
    costs = segment_costs(segments, history, settings, options)
    reached, spent = 0, 0.0
    for cost in costs:
        if spent + cost + worst > budget_usd:
            break
        spent += cost
        reached += 1
    whole: dict[str, bool] = {}
    for i, s in enumerate(segments):
        whole[s.video_id] = whole.get(s.video_id, True) and i < reached
    return BudgetReach(
        budget_usd=budget_usd,
        segments=reached,
        videos=sum(whole.values()),
        expected_usd=round(spent, 6),
        task_worst_case_usd=round(worst, 6),
    )


def resume_budget(store, job_id: str, settings: ModelSettings | None = None) -> float:
    """A budget that should take the job to the end: what it spent, plus the expected cost of its stages not
    finished (rates measured in this database, a quarter more for safety), plus one task's worst case (the
    last task must still fit). Rounded up to the cent; what `v2s status` and a paused run suggest."""
    settings = settings or ModelSettings()
    options = PlanOptions()
    spent = float(store.usage(job_id)["cost_usd"])
    segments = store.planned_segments(job_id)
    if not segments:
        return math.ceil(spent * 100) / 100 or 0.01
    history = store.measured_stages()
    plan = estimate(job_id, "", segments, history, settings, options)
    progress, total = store.progress(job_id), store.segment_count(job_id)
    left = 0.0
    for s in plan.stages:
        counts = progress.get(s.stage, {})
        remaining = max(0, total - counts.get("done", 0) - counts.get("rejected", 0))
        left += remaining * (s.cost_usd[s.tier] / s.calls if s.calls else 0.0)
    worst = task_worst_case(segments, settings, options)
    return math.ceil((spent + 1.25 * left + worst) * 100) / 100


def _stage(stage, segments, history, settings: ModelSettings, table: PriceTable, options) -> StageEstimate:
    model = getattr(settings, f"{stage}_model")
    resolution = getattr(settings, f"{stage}_media_resolution", None)
    price = settings.price(model)
    rates = _measured_rates(stage, history, table, resolution, price)
    video = [_video_tokens(stage, table, s.end_s - s.start_s, s.has_audio, resolution) for s in segments]
    text = round(rates.text_tokens * len(segments))
    answer = round(rates.output_per_s * sum(s.end_s - s.start_s for s in segments))
    thinking = round(answer * rates.thinking_ratio)
    output = answer + thinking  # thinking is billed as output (Gemini's and OpenAI's pricing pages)
    inputs = sum(video) + text
    cost = {t: round(price.cost(inputs, output, t), 6) for t in TIERS}
    ttl = options.cache_ttl_s or settings.context_cache_ttl_s
    makes = stage == Stage.PLOT
    readable = {t: reads_cache(settings, t, ttl) for t in TIERS}  # batch: only if the TTL covers the wait
    cached = (
        _cached_cost(price, video, inputs, output, ttl, makes, readable) if stage in VIDEO_STAGES else None
    )
    return StageEstimate(
        stage=stage,
        model=model,
        tier=options.tier or settings.tier(stage),
        calls=len(segments),
        video_tokens=sum(video),
        text_tokens=text,
        input_tokens=inputs,
        output_tokens=output,
        thinking_tokens=thinking,
        thinking_basis=rates.thinking_basis,
        cost_usd=cost,
        cached_cost_usd=cached,
        basis=rates.basis,
        price_source=price_source(settings, model, table),
    )


def price_source(settings: ModelSettings, model: str, table: PriceTable) -> str:
    """Where a model's price comes from: the catalog (its version, the bundled file or V2S_PRICES_FILE), the
    user's V2S_PRICES, or both (an override on top of a catalog entry)."""
    catalog = f"catalog {table.version}" + (f" ({settings.prices_file})" if settings.prices_file else "")
    if model not in settings.prices:
        return catalog
    return f"V2S_PRICES over {catalog}" if table.known(model) else "V2S_PRICES"


def _cached_cost(
    price: Price,
    video: list[int],
    inputs: int,
    output: int,
    ttl_s: float,
    makes: bool,
    readable: dict[str, bool],
):
    """The stage with each segment's video read from its context cache (annotator/gateway/context_cache.py):
    at the cached price, where the model caches and the clip is at least its smallest cacheable size. The plot
    stage `makes` the caches: their tokens once at the input price and their storage for `ttl_s`. At a tier
    whose stages cannot read a cache of `ttl_s` (`readable`: batch, unless the TTL covers the batch's wait),
    a run makes none and sends the video, so the stage costs what it costs without."""
    if price.cached_input_per_m is None or not price.min_cache_tokens:
        return None
    cached = [v for v in video if v >= price.min_cache_tokens]
    making = sum(price.cost(v, 0) + price.storage_cost(v, ttl_s) for v in cached) if makes else 0.0

    def at(tier: str) -> float:
        if not readable[tier]:
            return round(price.cost(inputs, output, tier), 6)
        return round(price.cost(inputs, output, tier, cached_tokens=sum(cached)) + making, 6)

    return {t: at(t) for t in TIERS}


def _wall_time(segments, stages: list[StageEstimate], settings: ModelSettings, options) -> tuple[float, str]:
    latency = {s.stage: options.latency_s.get(s.tier, options.latency_s["standard"]) for s in stages}
    chains: dict[str, int] = defaultdict(int)
    for segment in segments:
        chains[segment.scope] += 1
    longest = max(chains.values(), default=0)
    bounds = {
        "the longest plot chain": longest * latency[Stage.PLOT]
        + (latency[Stage.SCRIPT] + latency[Stage.DISTILL] if longest else 0.0),
        # a batch stage's calls are one batch per wave or pool, not calls in flight: they do not queue here
        "concurrency": sum(s.calls * latency[s.stage] for s in stages if s.tier != "batch")
        / options.concurrency,
    }
    limits = options.rate_limits if options.rate_limits is not None else settings.rate_limits
    window = settings.rate_limit_window_s
    by_model: dict[str, list[StageEstimate]] = defaultdict(list)
    for s in stages:
        if s.tier != "batch":  # batches have their own quotas (enqueued tokens), not requests per minute
            by_model[s.model].append(s)
    for model, used in by_model.items():
        limit = limits.get(model)
        if limit is None:
            continue
        if limit.rpm:
            bounds[f"{model} requests per minute"] = sum(s.calls for s in used) / limit.rpm * window
        if limit.tpm:
            tokens = sum(s.input_tokens + s.output_tokens for s in used)
            bounds[f"{model} tokens per minute"] = tokens / limit.tpm * window
    bound = max(bounds, key=bounds.get)
    return bounds[bound], bound


def plan_job(spec, options: PlanOptions, console=None, *, check_calls: bool = True) -> Plan:
    """Split the videos of `spec` (kept for the run) and price them. The models are checked first, as a run
    checks them (`v2s check`: its tiny calls unless `check_calls` is False), before anything is split: a
    retired or unpriced model's plan would say $0, a routed one's the wrong price (ModelCallError)."""
    from rich.console import Console

    from annotator.gateway.preflight import check_catalog, stage_models
    from jobs.check import vision_only_warnings
    from jobs.runner import check_before_work, open_database, print_warnings, run_job
    from profiles_db.stages import StageStore

    console = console or Console()
    models = ModelSettings()
    keyed = {"gemini": models.gemini_api_key or models.vertex_project, "openai": models.openai_api_key}
    if all(keyed[backend] for _, backend, _ in stage_models(models)):
        check_before_work(console, models, check_calls)
    else:  # pricing needs no key: a plan made before the keys exist checks what it can
        check_catalog(models)
        print_warnings(console, vision_only_warnings(models))
        console.print(
            "[dim]no model key here: the catalog was checked; access is checked when the job runs[/dim]"
        )
    options = options.model_copy(update={"context_tokens": spec.context_token_budget})
    job_id, summary = run_job(spec, console, prepare_only=True, models=models)
    db = open_database(spec.db_url())
    try:
        store = StageStore(db)
        segments = store.planned_segments(job_id)
        history = store.measured_stages(exclude_job=job_id)
    finally:
        db.dispose()
    return estimate(job_id, spec.source, segments, history, models, options, summary.failed_videos)
