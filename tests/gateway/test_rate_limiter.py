"""Rate limits: the window arithmetic on a fake clock, then the cluster-wide actor on a real local Ray."""

from __future__ import annotations

import random
import time

import pytest
import ray

from annotator.gateway import Gateway, Media
from annotator.gateway.limiter import LocalRateLimiter, WindowLimits
from annotator.settings import ModelSettings, RateLimit
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import MODELS, fast_scenario, settings_for
from tests.support.play import make_proxy, segment_provenance, small_screenplay
from workers.storage import file_sha256

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

# the window the limiter keeps: the quota's plus its safety margin
SPAN = WindowLimits(RateLimit(), 60.0).span


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, **limits: RateLimit) -> LocalRateLimiter:
    return LocalRateLimiter(limits, window_s=60.0, clock=clock, sleep=clock.sleep)


def max_in_any_window(times: list[float], window_s: float) -> int:
    """The most grants inside any half-open window [t, t + window_s) that starts at a grant."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] + window_s <= t:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_requests_per_minute_are_granted_until_the_quota_then_wait_for_the_window():
    clock = FakeClock()
    lim = limiter(clock, m=RateLimit(rpm=3))
    granted = [lim.acquire("m", 10).granted_at for _ in range(7)]
    assert granted[:3] == [1000.0] * 3  # a full window's quota may go at once
    # the next three when the first three leave the window (plus the safety margin)
    assert granted[3:6] == [pytest.approx(1000 + SPAN)] * 3
    assert granted[6] == pytest.approx(1000 + 2 * SPAN)
    assert max_in_any_window(granted, SPAN) == 3


def test_a_model_without_a_limit_never_waits():
    clock = FakeClock()
    lim = limiter(clock, m=RateLimit(rpm=1))
    for _ in range(50):
        assert lim.acquire("other", 10_000).id == 0
    assert clock.slept == []


def test_tokens_are_reserved_then_corrected_with_the_real_usage():
    clock = FakeClock()
    lim = limiter(clock, m=RateLimit(tpm=1000))
    first = lim.acquire("m", 600)
    # the estimate (600) leaves no room for another 600 ...
    assert lim._limits["m"].wait_s(600, clock.now) == pytest.approx(SPAN)
    lim.settle(first, 100)  # ... but the answer used only 100, so the window has room again
    second = lim.acquire("m", 600)
    assert second.granted_at == 1000.0 and clock.slept == []
    third = lim.acquire("m", 600)  # 100 + 600 + 600 > 1000: waits for the first two to leave
    assert third.granted_at == pytest.approx(1000 + SPAN)


def test_an_estimate_above_the_whole_quota_still_goes_alone():
    clock = FakeClock()
    lim = limiter(clock, m=RateLimit(tpm=1000))
    assert lim.acquire("m", 50_000).tokens == 1000
    assert lim.acquire("m", 50_000).granted_at == pytest.approx(1000 + SPAN)


def test_a_429_cools_down_every_caller_of_that_model_even_one_without_a_limit():
    clock = FakeClock()
    lim = limiter(clock, m=RateLimit(rpm=100))
    lim.penalise("m", 7.5)
    lim.penalise("unlimited", None)  # no Retry-After: the default cooldown
    assert lim.acquire("m", 1).granted_at == 1007.5
    assert lim.acquire("unlimited", 1).granted_at >= 1005.0
    assert lim.acquire("third", 1).id == 0  # other models are not held back


def test_random_traffic_never_exceeds_the_quota_in_any_window():
    rng = random.Random(4)
    window = WindowLimits(RateLimit(rpm=7, tpm=5000), window_s=10.0)
    now, granted = 0.0, []
    for _ in range(400):
        now += rng.choice([0.0, 0.0, 0.3, 1.7, 4.0])
        tokens = rng.randint(10, 2000)
        wait = window.wait_s(tokens, now)
        now += wait
        assert window.wait_s(tokens, now) == 0
        res = window.reserve("m", tokens, now)
        window.settle(res, rng.randint(0, tokens), now + rng.choice([0.0, 0.5, 3.0]))
        granted.append(now)
    assert max_in_any_window(granted, window.span) == 7


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("V2S_RATE_LIMITS", '{"gemini-2.5-pro": {"rpm": 150, "tpm": 2000000}}')
    monkeypatch.setenv("V2S_RATE_LIMIT_WINDOW_S", "5")
    settings = ModelSettings()
    assert settings.rate_limits["gemini-2.5-pro"] == RateLimit(rpm=150, tpm=2_000_000)
    assert settings.rate_limit_window_s == 5.0


# --- the cluster-wide actor on a real local Ray ------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    # address="local": a cluster another process started on this machine is not ours to use
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="v2s")
    try:
        yield
    finally:
        ray.shutdown()


@ray.remote(num_cpus=0)
def ask(model: str, job: str, limits: dict, window_s: float) -> tuple[str, float]:
    from workers.rate_limiter import ClusterRateLimiter

    lim = ClusterRateLimiter({m: RateLimit(**v) for m, v in limits.items()}, window_s=window_s)
    res = lim.acquire(model, 100)
    lim.settle(res, 50)
    return job, res.granted_at


def test_cluster_limiter_keeps_every_window_under_quota_and_serves_both_jobs(local_ray):
    limits, window = {"bench-model": {"rpm": 4}}, 1.0
    refs = [ask.remote("bench-model", job, limits, window) for _ in range(8) for job in ("job-a", "job-b")]
    results = ray.get(refs)
    times = [t for _, t in results]
    assert max_in_any_window(times, window) <= 4
    assert len(results) == 16
    # neither job waits for the other to finish first
    first_b = min(t for j, t in results if j == "job-b")
    last_a = max(t for j, t in results if j == "job-a")
    first_a = min(t for j, t in results if j == "job-a")
    last_b = max(t for j, t in results if j == "job-b")
    assert first_b < last_a and first_a < last_b


def test_jobs_take_turns_so_a_late_small_job_is_not_held_behind_a_big_one(local_ray):
    from workers.rate_limiter import limiter_actor

    handle = limiter_actor("turns-model", RateLimit(rpm=2), 0.3)
    big = [handle.acquire.remote(10, "big-job") for _ in range(12)]
    # the big job's requests are all queued before the small job asks
    deadline = time.monotonic() + 10
    while ray.get(handle.stats.remote())["waiting"] < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    small = [handle.acquire.remote(10, "small-job") for _ in range(4)]
    granted = sorted(
        [(r.granted_at, "big") for r in ray.get(big)] + [(r.granted_at, "small") for r in ray.get(small)]
    )
    last_small = max(i for i, (_, job) in enumerate(granted) if job == "small")
    big_before = sum(job == "big" for _, job in granted[:last_small])
    # first come first served would send all 12 of the big job first; in turns it is at most the 2 granted
    # before the small job arrived, one more in flight, and one per small request
    assert big_before <= 2 + 1 + 4, granted
    stats = ray.get(handle.stats.remote())
    assert stats["granted_by_client"] == {"big-job": 12, "small-job": 4}
    assert max_in_any_window([t for t, _ in granted], 0.3) <= 2


def test_the_cluster_limiter_names_the_ray_job_as_the_client(local_ray):
    from workers.rate_limiter import ClusterRateLimiter, limiter_actor

    limiter = ClusterRateLimiter({"named-model": RateLimit(rpm=100)}, window_s=60.0)
    limiter.settle(limiter.acquire("named-model", 10), 5)
    stats = ray.get(limiter_actor("named-model", RateLimit(rpm=100), 60.0).stats.remote())
    assert stats["granted_by_client"] == {ray.get_runtime_context().get_job_id(): 1}


def test_cluster_limiter_honours_a_429_cooldown_for_every_worker(local_ray):
    from workers.rate_limiter import NAMESPACE, actor_name, limiter_actor

    limits, window = {"cool-model": {"rpm": 100}}, 60.0
    handle = limiter_actor("cool-model", RateLimit(rpm=100), window)
    until = ray.get(handle.penalise.remote(1.5))
    results = ray.get([ask.remote("cool-model", "job", limits, window) for _ in range(4)])
    assert all(t >= until for _, t in results)
    # an unlimited model that got a 429 gets an actor, found by workers that have no limit for it
    from workers.rate_limiter import ClusterRateLimiter

    ClusterRateLimiter({}).penalise("free-model", 0.5)
    assert ray.get_actor(actor_name("free-model"), namespace=NAMESPACE) is not None
    _, granted = ray.get(ask.remote("free-model", "job", {}, window))
    assert granted > 0  # it went through the actor (an unlimited model's local path reports 0)


# --- the gateway: every HTTP attempt goes through the limiter, a 429 penalises ------------------------------


def test_every_attempt_of_the_gateway_is_counted_and_a_429_cools_the_model_down(tmp_path):
    proxy = make_proxy(tmp_path / "seg1.mp4", segment_provenance(1, 0.0, 30.0))
    model = MODELS["gemini"]
    with SimulatorServer(small_screenplay(), behaviours=fast_scenario("rate_limit@plot:2")) as server:
        limiter = LocalRateLimiter({model: RateLimit(rpm=1000)}, window_s=60.0)
        gateway = Gateway(settings_for(server), limiter=limiter)
        segment = SegmentInput(
            index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
        )
        result = PlotReasoner(gateway, backend="gemini", model=model).reason(segment, None)
        calls = [r for r in server.requests if r.endpoint == "generateContent"]
    assert result.ok and [r.status for r in calls] == [429, 429, 200]
    window = limiter._limits[model]
    assert window.in_window(window.cooldown_until) == 3  # the first ask and both retries were let through
    assert window.cooldown_until > 0  # the 429s put the model in cooldown (Retry-After: 0 here)
