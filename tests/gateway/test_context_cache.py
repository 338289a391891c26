"""Explicit context caching of a segment's video, through the REAL google-genai SDK to the simulator's
`cachedContents` (create, read by generateContent, delete, expiry), and through a real run on Ray: the same
records, cached tokens counted and billed at the cached price, every cache deleted when its script is final."""

from __future__ import annotations

import json
import time

import pytest

from annotator.gateway import Gateway, Media
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import StageStore
from tests.support.e2e import models_from
from tests.support.films import film_copy
from tests.support.gateway import settings_for
from workers.storage import file_sha256

pytestmark = pytest.mark.shared_ray  # its jobs run on the session's one Ray (tests/support/ray_session.py)

# Explicit caches only where the catalog knows the storage price (gemini-3.8-flash's is not published yet);
# at Flash-Lite's prices a cache pays when held a minute, not five.
MODEL = "gemini-2.5-flash-lite"
CACHED = {"plot_model": MODEL, "script_model": MODEL, "context_cache_ttl_s": 60.0}


def _segment(proxy) -> SegmentInput:
    return SegmentInput(index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy)))


def test_a_cached_video_is_read_by_the_call_and_billed_at_the_cached_price(play, proxy):
    with SimulatorServer(play) as server:
        gw = Gateway(settings_for(server, context_cache=True))
        segment = _segment(proxy)
        plain = PlotReasoner(gw, backend="gemini", model=MODEL).reason(segment, None)
        cache = gw.cache_video("gemini", MODEL, segment.media)
        assert server.caches.created == 1 and cache.tokens > 0
        shown = segment.model_copy(
            update={"media": segment.media.model_copy(update={"cache_name": cache.name})}
        )
        cached = PlotReasoner(gw, backend="gemini", model=MODEL).reason(shown, None)
        assert cached.ok and cached.value == plain.value  # the same clip was placed from the cache
        assert cached.usage.cached_tokens == cache.tokens
        assert cached.usage.input_tokens == plain.usage.input_tokens  # promptTokenCount counts the cache too
        price = gw.settings.price(MODEL)
        expected = price.cost(
            cached.usage.input_tokens, cached.usage.output_tokens, cached_tokens=cache.tokens
        )
        assert (
            cached.usage.cost_usd == pytest.approx(expected) and cached.usage.cost_usd < plain.usage.cost_usd
        )
        gw.drop_cache("gemini", cache.name)
        gw.drop_cache("gemini", cache.name)  # one already gone is not an error
        assert server.caches.deleted == 1 and not server.caches.live()


def test_an_expired_cache_is_replaced_by_the_video_itself(play, proxy):
    with SimulatorServer(play) as server:
        gw = Gateway(settings_for(server, context_cache=True, context_cache_ttl_s=1))
        segment = _segment(proxy)
        cache = gw.cache_video("gemini", MODEL, segment.media)
        time.sleep(1.3)
        shown = segment.model_copy(
            update={"media": segment.media.model_copy(update={"cache_name": cache.name})}
        )
        result = PlotReasoner(gw, backend="gemini", model=MODEL).reason(shown, None)
        assert result.ok and result.usage.cached_tokens == 0
        assert [r.status for r in server.requests if r.endpoint == "generateContent"] == [403, 200]


@pytest.fixture(scope="module")
def runs(play, tmp_path_factory):
    """The same film annotated twice on Ray, without and with V2S_CONTEXT_CACHE (separate outputs)."""
    base = tmp_path_factory.mktemp("context-cache")
    film = film_copy(play, base / "film.mp4")
    found = {}
    models = {"V2S_PLOT_MODEL": MODEL, "V2S_SCRIPT_MODEL": MODEL, "V2S_CONTEXT_CACHE_TTL_S": "60"}
    for mode, extra in (("plain", models), ("cached", {**models, "V2S_CONTEXT_CACHE": "1"})):
        with SimulatorServer(play) as server, models_from(server, "sim-test-key-cache", **extra):
            out = base / mode
            job_id, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=30, num_cpus=2))
            found[mode] = (out, job_id, summary, server.caches.created, server.caches.deleted)
    return found


def _records(out) -> dict[str, dict]:
    rows = [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]
    return {r["id"]: r["script"] for r in rows}


def test_a_run_with_context_caching_writes_the_same_records_for_less(runs):
    plain_out, plain_job, plain, made_plain, _ = runs["plain"]
    out, job_id, summary, made, deleted = runs["cached"]
    assert summary.records_written == plain.records_written == summary.segments >= 3
    assert _records(out) == _records(plain_out)
    assert made_plain == 0 and made == deleted == summary.segments  # one per segment, each deleted
    db = Database(sqlite_url(out / "v2s.sqlite"))
    plain_db = Database(sqlite_url(plain_out / "v2s.sqlite"))
    try:
        usage, before = (
            StageStore(db).usage_breakdown(job_id),
            StageStore(plain_db).usage_breakdown(plain_job),
        )
        with db.sessions() as s:
            from sqlalchemy import text

            cached = dict(
                s.execute(text("SELECT stage, SUM(cached_tokens) FROM stage_runs GROUP BY stage")).all()
            )
    finally:
        db.dispose()
        plain_db.dispose()
    assert cached["plot"] > 0 and cached["script"] > 0 and not cached.get("distill")
    # the same prompts and clips (a script's prompt lists the profiles as the memory holds them when it
    # runs, which the order of the Ray tasks may change by a few tokens, caching or not)
    assert usage["stage"]["plot"]["input_tokens"] == before["stage"]["plot"]["input_tokens"]
    assert usage["stage"]["script"]["input_tokens"] == pytest.approx(
        before["stage"]["script"]["input_tokens"], rel=0.01
    )
    assert usage["stage"]["script"]["cost_usd"] < before["stage"]["script"]["cost_usd"]
    total = sum(v["cost_usd"] for v in usage["stage"].values())
    assert total < sum(v["cost_usd"] for v in before["stage"].values())


def test_caching_is_used_only_where_it_pays():
    from annotator.gateway.context_cache import worth_caching
    from annotator.settings import ModelSettings

    def pays(seconds: float = 30.0, **values) -> bool:
        values = {**CACHED, **values}
        return worth_caching(ModelSettings(_env_file=None, context_cache=True, **values), seconds, True)

    assert pays()
    assert not pays(seconds=5.0)  # 5 s × (258 + 32) tokens is under the 2,048-token minimum
    assert not pays(plot_tier="flex", script_tier="flex")  # made at full price, it saves less than it costs
    assert not pays(plot_model="gemini-3.8-flash")  # a cache serves one model
    assert not pays(plot_model="gemini-3.8-flash", script_model="gemini-3.8-flash")  # storage price unknown
    assert not pays(plot_media_resolution="low")
    # a batch item runs up to a day later (Gemini's 24 h target): no cache for a batch-tier stage unless its
    # TTL covers that wait; with one stage left to read it, a cache never pays
    assert not pays(plot_tier="batch", script_tier="batch")
    assert not pays(script_tier="batch")
    assert not pays(plot_tier="batch", context_cache_ttl_s=3600.0)
    assert not worth_caching(ModelSettings(_env_file=None), 30.0, True)  # off unless asked for


def test_a_cache_holds_the_video_at_the_stages_media_resolution(play, proxy):
    """A cache has no generationConfig: its video's tokens are counted when it is made. A cache for stages that
    watch at MEDIA_RESOLUTION_LOW carries it on the video part (Gemini 3's per-part mediaResolution), so it
    holds 66 tokens a frame, not 258, and a call reading it counts what the same call without it counts."""
    low = {"plot_media_resolution": "low", "script_media_resolution": "low"}
    model = "gemini-3.8-flash"  # takes a part's own mediaResolution (Gemini 3)
    with SimulatorServer(play) as server:
        gw = Gateway(settings_for(server, context_cache=True, **low))
        segment = _segment(proxy)
        plain = PlotReasoner(gw, backend="gemini", model=model).reason(segment, None)
        cache = gw.cache_video("gemini", model, segment.media)
        full = Gateway(settings_for(server, context_cache=True)).cache_video("gemini", model, segment.media)
        shown = segment.model_copy(
            update={"media": segment.media.model_copy(update={"cache_name": cache.name})}
        )
        cached = PlotReasoner(gw, backend="gemini", model=model).reason(shown, None)
    # 30 s at 1 fps: 30 frames × (258 − 66) tokens fewer at LOW; the audio (32 a second) is the same
    assert full.tokens - cache.tokens == 30 * (258 - 66)
    assert cached.ok and cached.usage.cached_tokens == cache.tokens
    assert cached.usage.input_tokens == plain.usage.input_tokens
