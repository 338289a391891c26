"""`v2s plan` against what the run then reports: real splitting on Ray, the real SDKs to the simulator.

One earlier run (film A) is what the plan measures text and answer sizes from; the plan of two more films
(B, C) asks no model, keeps its split for the run, and predicts that run's tokens within 10% and its
standard-tier cost within 15% (issue 17's bar). The estimator's own rules (defaults, caching, quotas) are
checked on the pure function."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.settings import ModelSettings, RateLimit
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.plan import DEFAULT_OUTPUT_PER_MIN, Plan, PlanOptions, estimate
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import JobStatus, PlannedSegment, Stage, StageStore
from tests.support.e2e import models_from
from tests.support.films import film_copy
from tests.support.media import retitled
from tests.support.play import small_screenplay

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
SEGMENT_S = 30


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """(plan JSON, the plan's model calls, spans and proxy mtimes after the plan, the run's job id, db)."""
    base = tmp_path_factory.mktemp("plan")
    screenplay = small_screenplay()
    film = film_copy(screenplay, base / "calibration" / "film a.mp4")
    (base / "next").mkdir()
    retitled(film, base / "next" / "film b.mp4", "Film B")
    retitled(film, base / "next" / "film c.mp4", "Film C")
    db_url = sqlite_url(base / "v2s.sqlite")
    with SimulatorServer(screenplay) as server, models_from(server, "sim-test-key-plan"):
        earlier = JobSpec(source=str(film), out=base / "out-a", database_url=db_url, max_segment_s=SEGMENT_S)
        run_job(earlier.model_copy(update={"num_cpus": 2}))
        calls_before = _model_calls(server)
        out = base / "out-b"
        args = ["plan", str(base / "next"), "--out", str(out), "--database-url", db_url]
        args += ["--max-segment-s", str(SEGMENT_S), "--num-cpus", "2", "--format", "json"]
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 0, shown.output
        plan = Plan.model_validate_json(shown.stdout)
        plan_calls = _model_calls(server) - calls_before
        db = Database(db_url)
        store = StageStore(db)
        spans = {v: store.segment_spans(v) for v in {s.video_id for s in store.planned_segments(plan.job)}}
        mtimes = {p: p.stat().st_mtime_ns for p in (out / "proxies").rglob("*.mp4")}
        job_id, _ = run_job(
            earlier.model_copy(update={"source": str(base / "next"), "out": out, "num_cpus": 2})
        )
    yield plan, plan_calls, spans, mtimes, job_id, db
    db.dispose()


def _model_calls(server: SimulatorServer) -> int:
    return sum(1 for r in server.requests if r.endpoint in ("generateContent", "chat.completions"))


def test_the_plan_asks_no_model_and_its_split_is_what_the_run_uses(planned):
    plan, plan_calls, spans, mtimes, _, db = planned
    store = StageStore(db)
    assert plan_calls == 0
    assert store.job(plan.job).status == JobStatus.PLANNED
    assert plan.videos == 2 and plan.segments == sum(len(v) for v in spans.values()) >= 4
    assert {v: store.segment_spans(v) for v in spans} == spans  # the same segments, proxies included
    assert mtimes and all(p.stat().st_mtime_ns == m for p, m in mtimes.items())  # not cut again
    assert all(s.basis.startswith("measured over") for s in plan.stages)


def test_the_plan_prices_the_thinking_the_earlier_run_recorded(planned):
    """The earlier run recorded its thinking per stage (the simulator's DeepSeek-style distillation reports
    reasoning_tokens; its Gemini answers report none): the plan measures the ratio instead of assuming it."""
    plan, *_ = planned
    by_stage = {s.stage: s for s in plan.stages}
    distill = by_stage[Stage.DISTILL]
    assert distill.thinking_basis.startswith("measured") and distill.thinking_tokens > 0
    assert (
        by_stage[Stage.PLOT].thinking_basis.startswith("measured")
        and by_stage[Stage.PLOT].thinking_tokens == 0
    )
    price = ModelSettings(_env_file=None).price(distill.model)
    assert distill.cost_usd["standard"] == pytest.approx(
        price.cost(distill.input_tokens, distill.output_tokens), rel=1e-4
    )


def test_the_plan_predicts_the_runs_tokens_within_10_and_its_cost_within_15_percent(planned):
    plan, _, _, _, job_id, db = planned
    used = StageStore(db).usage_breakdown(job_id)["stage"]
    for s in plan.stages:
        real = used[s.stage]
        assert s.input_tokens == pytest.approx(real["input_tokens"], rel=0.10), s.stage
        assert s.output_tokens == pytest.approx(real["output_tokens"], rel=0.10), s.stage
    spent = sum(used[s]["cost_usd"] for s in (Stage.PLOT, Stage.SCRIPT, Stage.DISTILL))
    assert plan.total.cost_usd["standard"] == pytest.approx(spent, rel=0.15)
    assert plan.total.configured_cost_usd == plan.total.cost_usd["standard"]  # every stage at standard
    assert plan.total.cost_usd["flex"] == pytest.approx(  # flex halves the Gemini stages only
        sum(s.cost_usd["standard"] * (0.5 if s.model.startswith("gemini") else 1.0) for s in plan.stages),
        abs=1e-5,
    )
    ratios = {
        s.stage: (
            s.input_tokens / used[s.stage]["input_tokens"],
            s.output_tokens / used[s.stage]["output_tokens"],
        )
        for s in plan.stages
    }
    print(
        f"plan/run tokens (in, out) per stage: {ratios}; cost {plan.total.cost_usd['standard'] / spent:.3f}"
    )


# -- the estimator on its own ---------------------------------------------------------------------------


def _segments(scopes: int, per_scope: int, seconds: float = 300.0) -> list[PlannedSegment]:
    return [
        PlannedSegment(f"scope-{k}", f"video-{k}", i * seconds, (i + 1) * seconds, True)
        for k in range(scopes)
        for i in range(per_scope)
    ]


def test_without_earlier_runs_the_plan_says_it_uses_defaults_and_prices_the_video_by_the_table():
    settings = ModelSettings(_env_file=None)
    plan = estimate("job-x", "src", _segments(1, 2), [], settings, PlanOptions())
    plot = next(s for s in plan.stages if s.stage == Stage.PLOT)
    assert plot.basis == "defaults"
    # 2 × 300 s at 1 fps × 258 tokens per frame + 32 audio tokens per second
    assert plot.video_tokens == 2 * (300 * 258 + 300 * 32)
    answer = round(DEFAULT_OUTPUT_PER_MIN[Stage.PLOT] * 10)
    # thinking at the catalog's assumed ratio for the model, billed as output
    ratio = settings.price(plot.model).assumed_thinking_ratio
    assert (
        plot.thinking_tokens == round(answer * ratio) and plot.output_tokens == answer + plot.thinking_tokens
    )
    assert plot.thinking_basis.startswith("catalog assumption") and plot.price_source == "catalog 2026-12-07"
    distill = next(s for s in plan.stages if s.stage == Stage.DISTILL)
    assert distill.video_tokens == 0 and distill.cached_cost_usd is None  # DeepSeek: no explicit cache
    assert plan.usd_per_video_hour() == pytest.approx(plan.total.cost_usd["standard"] / (600 / 3600))


def test_caching_the_video_between_plot_and_script_pays_and_its_making_is_counted():
    # a model whose explicit-cache storage price the catalog knows (gemini-3.8-flash's is not published),
    # held a minute: at Flash-Lite's storage price a five-minute cache costs more than it saves
    lite = "gemini-2.5-flash-lite"
    settings = ModelSettings(_env_file=None, plot_model=lite, script_model=lite)
    plan = estimate("job-x", "src", _segments(1, 4), [], settings, PlanOptions(cache_ttl_s=60))
    plot, script = (next(s for s in plan.stages if s.stage == stage) for stage in (Stage.PLOT, Stage.SCRIPT))
    price = settings.price(script.model)
    discount = (price.input_per_m - price.cached_input_per_m) / 1e6
    assert script.cost_usd["standard"] - script.cached_cost_usd["standard"] == pytest.approx(
        script.video_tokens * discount, rel=1e-4
    )
    # the plot stage makes the caches: their tokens once at the input price, and their storage
    making = plot.video_tokens * price.input_per_m / 1e6 + price.storage_cost(plot.video_tokens, 60)
    assert plot.cached_cost_usd["standard"] == pytest.approx(
        plot.cost_usd["standard"] - plot.video_tokens * discount + making, rel=1e-4
    )
    assert plan.total.cached_cost_usd["standard"] < plan.total.cost_usd["standard"]


def test_at_the_batch_tier_the_plan_prices_no_cache_unless_its_ttl_covers_the_batch():
    """A batch item runs up to a day after it was made (Gemini's 24 h target): a five-minute cache is gone by
    then, so a run makes none (annotator/gateway/context_cache.worth_caching) and the plan prices the video
    sent; with a TTL that covers the wait, the cache is priced, storage for the whole TTL included."""
    from annotator.gateway.context_cache import worth_caching

    lite = "gemini-2.5-flash-lite"
    settings = ModelSettings(_env_file=None, plot_model=lite, script_model=lite, context_cache=True)
    plan = estimate("job-x", "src", _segments(1, 4), [], settings, PlanOptions(cache_ttl_s=300))
    for stage in (s for s in plan.stages if s.stage in (Stage.PLOT, Stage.SCRIPT)):
        assert stage.cached_cost_usd["batch"] == stage.cost_usd["batch"]  # no cache: what it costs without
        assert stage.cached_cost_usd["standard"] != stage.cost_usd["standard"]
    batch = settings.model_copy(update={"plot_tier": "batch", "script_tier": "batch"})
    assert not worth_caching(batch, 300.0, True)  # the run agrees: no cache at the batch tier
    assert not worth_caching(settings.model_copy(update={"script_tier": "batch"}), 300.0, True)

    day = settings.batch_expected_wait_s
    covered = estimate("job-x", "src", _segments(1, 4), [], settings, PlanOptions(cache_ttl_s=day))
    plot = next(s for s in covered.stages if s.stage == Stage.PLOT)
    price = settings.price(lite)
    assert plot.cached_cost_usd["batch"] > plot.cost_usd["batch"]  # a day's storage costs more than it saves
    assert plot.cached_cost_usd["batch"] - plot.cost_usd["batch"] == pytest.approx(
        plot.video_tokens * price.input_per_m / 1e6
        + price.storage_cost(plot.video_tokens, day)
        - (
            price.cost(plot.video_tokens, 0, "batch")
            - price.cost(plot.video_tokens, 0, "batch", cached_tokens=plot.video_tokens)
        ),
        rel=1e-4,
    )


def test_wall_time_is_bound_by_the_longest_chain_or_the_quota():
    settings = ModelSettings(_env_file=None)
    options = PlanOptions(latency_s={"standard": 10.0, "flex": 100.0}, concurrency=100)
    one_long_chain = estimate("j", "s", _segments(1, 20), [], settings, options)
    assert one_long_chain.wall_time_bound == "the longest plot chain"
    assert one_long_chain.wall_time_s == pytest.approx(20 * 10 + 10 + 10)
    many = estimate("j", "s", _segments(200, 1), [], settings, options)
    assert many.wall_time_bound == "concurrency"
    assert many.wall_time_s == pytest.approx(3 * 200 * 10 / 100)
    quota = options.model_copy(update={"rate_limits": {"gemini-3.8-flash": RateLimit(rpm=10)}})
    limited = estimate("j", "s", _segments(200, 1), [], settings, quota)
    assert limited.wall_time_bound == "gemini-3.8-flash requests per minute"
    assert limited.wall_time_s == pytest.approx(400 / 10 * 60)  # plot + script calls on that model
    flex = estimate("j", "s", _segments(1, 20), [], settings, options.model_copy(update={"tier": "flex"}))
    assert flex.wall_time_s == pytest.approx(20 * 100 + 200) and all(s.tier == "flex" for s in flex.stages)
    # at batch, 200 one-segment videos are one wave: one batch turn per stage, no queue, no per-minute quota
    batch = quota.model_copy(update={"tier": "batch", "latency_s": {"standard": 10.0, "batch": 1000.0}})
    waves = estimate("j", "s", _segments(200, 1), [], settings, batch)
    assert waves.wall_time_bound == "the longest plot chain" and waves.wall_time_s == pytest.approx(3 * 1000)


def test_plan_json_round_trips():
    plan = estimate("job-x", "src", _segments(2, 1), [], ModelSettings(_env_file=None), PlanOptions())
    assert Plan.model_validate(json.loads(plan.model_dump_json())) == plan


def test_the_plan_table_prices_thinking_and_says_where_each_price_comes_from(monkeypatch):
    """Measured thinking where earlier runs recorded it, the catalog's assumption elsewhere; the prices' sources
    (catalog version, V2S_PRICES) in the JSON and on the terminal."""
    from annotator.pricing import Price
    from jobs.cli_common import console
    from jobs.cli_plan import print_plan
    from profiles_db.stages import MeasuredStage

    settings = ModelSettings(
        _env_file=None, prices={"deepseek-flash": Price(input_per_m=0.2, output_per_m=1.0)}
    )
    # one earlier plot of 300 s: 3000 output tokens of which 1000 thinking (0.5 per answer token)
    history = [MeasuredStage(Stage.PLOT, "gemini-3.8-flash", 300.0, True, 90000, 3000, 1000)]
    plan = estimate("job-x", "src", _segments(1, 2), history, settings, PlanOptions())
    by_stage = {s.stage: s for s in plan.stages}
    plot, distill = by_stage[Stage.PLOT], by_stage[Stage.DISTILL]
    assert plot.thinking_basis.startswith("measured (0.50 per answer token")
    assert plot.output_tokens == 2 * 3000 and plot.thinking_tokens == 2 * 1000  # 600 s at the measured rates
    assert plot.cost_usd["standard"] == pytest.approx(
        settings.price(plot.model).cost(plot.input_tokens, plot.output_tokens)
    )
    assert distill.thinking_basis == "catalog assumption (0.5 per answer token)"
    assert (
        distill.price_source == "V2S_PRICES over catalog 2026-12-07"
        and plot.price_source == "catalog 2026-12-07"
    )
    assert plan.overridden == ["deepseek-flash"] and plan.price_table == "2026-12-07"
    # an earlier run from before thinking was recorded: its billed output stands, nothing is added
    old = [MeasuredStage(Stage.PLOT, "gemini-3.8-flash", 300.0, True, 90000, 3000, None)]
    unrecorded = estimate("job-x", "src", _segments(1, 2), old, settings, PlanOptions()).stages[0]
    assert unrecorded.output_tokens == 6000 and unrecorded.thinking_tokens == 0
    assert unrecorded.thinking_basis.startswith("in the measured output")

    monkeypatch.setattr(
        console, "_width", 400
    )  # the private field: restored to None (auto) after, where setting `width` would pin the width it had
    with console.capture() as shown:
        print_plan(plan)
    text = " ".join(shown.get().split())
    assert "of which thinking" in text and "measured (0.50 per answer token" in text
    assert "prices: the catalog 2026-12-07 (bundled); V2S_PRICES prices deepseek-flash" in text


def test_a_budget_reaches_the_segments_whose_expected_cost_fits_with_one_tasks_worst_case_kept_back():
    settings = ModelSettings(_env_file=None)
    segments = _segments(2, 3)  # two films of three 300 s segments
    whole = estimate("job-x", "src", segments, [], settings, PlanOptions())
    per_segment = whole.total.configured_cost_usd / len(segments)
    plan = estimate("job-x", "src", segments, [], settings, PlanOptions(budget_usd=100.0))
    assert plan.budget.segments == 6 and plan.budget.videos == 2  # plenty
    worst = plan.budget.task_worst_case_usd
    assert worst > per_segment / 3  # a task's worst case is above what a stage is expected to cost
    budget = worst + 3.5 * per_segment  # three segments and a half, after the worst case kept back
    reach = estimate("job-x", "src", segments, [], settings, PlanOptions(budget_usd=budget)).budget
    assert reach.segments == 3 and reach.videos == 1  # the first film whole, nothing of the second
    assert reach.expected_usd == pytest.approx(3 * per_segment, rel=1e-6)
    below = estimate("job-x", "src", segments, [], settings, PlanOptions(budget_usd=worst / 2)).budget
    assert below.segments == 0 and below.videos == 0
