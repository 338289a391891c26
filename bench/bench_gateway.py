"""Gateway benchmark: N segment questions against the simulator answering at a fixed latency, through the
cluster-wide rate limiter (one Ray actor per model) at several concurrency levels, then the same questions again
as a resumed job would ask them (every answer from the response cache).

    python bench/bench_gateway.py --segments 200 --latency-s 0.25 --quota 40 --window 5 --levels 1,4,16,64

For each level it prints the achieved throughput against the ideal min(quota/window, concurrency/latency) and
the requests above quota: requests the simulator received while `quota` others had already arrived in the
preceding `--window` seconds (arrival times taken by the simulator before its delay). The quota window is
scaled down from a minute by --window so the whole run takes a couple of minutes. Figures, not assertions.

Why the ratio can exceed 1: a sliding window lets a full quota through at once at the start (an idle key owes
nothing), so short runs finish ahead of the steady-state rate.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo  # noqa: E402


class FixedLatency(Behaviours):
    """Every model call is answered `latency_s` after its request arrived at the server (the server's own work
    included, as a remote model's latency would be); arrival times are kept for the quota check."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.arrivals: list[float] = []
        self._lock = threading.Lock()

    def before_answer(self, request: RequestInfo) -> Fault | None:
        with self._lock:
            self.arrivals.append(request.received_s)
        return Fault(delay_s=max(0.0, request.received_s + self.latency_s - time.monotonic()))


def serve_simulator(latency_s: float, urls, stop, arrivals) -> None:
    """The simulator in its own process, as a remote model would be: its CPU work (placing the clip in the film,
    writing the answer) and its threads do not compete with the engine's process for the GIL."""
    from annotator.simulator.server import SimulatorServer
    from tests.support.play import small_screenplay

    behaviours = FixedLatency(latency_s)
    with SimulatorServer(small_screenplay(), behaviours=behaviours) as server:
        urls.put(server.base_url)
        stop.wait()
    arrivals.put(behaviours.arrivals)  # time.monotonic() is one clock for every process of the machine


def above_quota(arrivals: list[float], quota: int, window_s: float) -> int:
    times, lo, over = sorted(arrivals), 0, 0
    for hi, t in enumerate(times):
        while times[lo] + window_s <= t:
            lo += 1
        over += hi - lo + 1 > quota
    return over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--latency-s", type=float, default=0.25)
    parser.add_argument("--quota", type=int, default=40, help="requests per window")
    parser.add_argument(
        "--window", type=float, default=5.0, help="the quota window, seconds (60 in production)"
    )
    parser.add_argument("--levels", default="1,4,16,64")
    args = parser.parse_args()

    import multiprocessing

    import ray

    from annotator.gateway import Gateway, Media
    from annotator.prompting import render
    from annotator.schemas import FirstSegmentPlot
    from annotator.settings import ModelSettings, RateLimit
    from profiles_db.db import Database, sqlite_url
    from profiles_db.response_cache import DatabaseResponseCache
    from tests.support.play import make_proxy, segment_provenance
    from workers.rate_limiter import ClusterRateLimiter
    from workers.storage import file_sha256

    tmp = Path(tempfile.mkdtemp(prefix="v2s-bench-gateway-"))
    proxy = make_proxy(tmp / "seg1.mp4", segment_provenance(1, 0.0, 30.0))
    media = Media(path=proxy, sha256=file_sha256(proxy))
    spawn = multiprocessing.get_context("spawn")
    urls, arrivals_q, stop = spawn.Queue(), spawn.Queue(), spawn.Event()
    simulator = spawn.Process(target=serve_simulator, args=(args.latency_s, urls, stop, arrivals_q))
    simulator.start()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="v2s")
    model = "gemini-3.8-flash"
    print(
        f"{args.segments} segments, latency {args.latency_s}s, quota {args.quota} per {args.window}s window "
        f"({args.quota / args.window:.1f}/s); simulator in its own process"
    )
    levels: list[tuple[int, float, float, int]] = []  # concurrency, started, ended, failed
    try:
        settings = ModelSettings(
            _env_file=None,
            V2S_GEMINI_API_KEY="bench",
            gemini_base_url=urls.get(timeout=60),
            rate_limits={model: RateLimit(rpm=args.quota)},
            rate_limit_window_s=args.window,
            max_attempts=3,
        )
        limiter = ClusterRateLimiter(settings.rate_limits, window_s=args.window)
        db = Database(sqlite_url(tmp / "cache.sqlite"))

        def run(gateway: Gateway, concurrency: int, level: int) -> list:
            def one(i: int):
                # each segment is its own question (the index is in the prompt); each level asks anew
                prompt = render("plot_first", 1, segment_index=level * 10_000 + i, duration="30s")
                return gateway.structured(
                    stage="plot",
                    backend="gemini",
                    model=model,
                    prompt=prompt,
                    schema=FirstSegmentPlot,
                    media=media,
                )

            with ThreadPoolExecutor(concurrency) as pool:
                return list(pool.map(one, range(args.segments)))

        last_level = 0
        for level, concurrency in enumerate(int(c) for c in args.levels.split(",")):
            time.sleep(args.window * 1.1)  # an idle quota window between levels, as for a fresh job
            gateway = Gateway(settings, limiter=limiter, cache=DatabaseResponseCache(db))
            started = time.monotonic()
            results = run(gateway, concurrency, level)
            levels.append((concurrency, started, time.monotonic(), sum(not r.ok for r in results)))
            last_level = level

        # a resumed job: the same questions again, from a fresh gateway over the same database
        gateway = Gateway(settings, limiter=limiter, cache=DatabaseResponseCache(db))
        resumed_from = time.monotonic()
        results = run(gateway, 16, last_level)
        cached = sum(r.cached for r in results)
    finally:
        ray.shutdown()
        stop.set()
    arrivals = arrivals_q.get(timeout=60)
    simulator.join(timeout=30)

    print(f"{'concurrency':>11} {'seconds':>8} {'req/s':>7} {'ideal':>7} {'ratio':>6} {'above quota':>11}")
    for concurrency, started, ended, failed in levels:
        elapsed = ended - started
        rate = args.segments / elapsed
        ideal = min(args.quota / args.window, concurrency / args.latency_s)
        over = above_quota([t for t in arrivals if started <= t <= ended], args.quota, args.window)
        note = f"  ({failed} failed)" if failed else ""
        print(
            f"{concurrency:>11} {elapsed:>8.1f} {rate:>7.2f} {ideal:>7.2f} {rate / ideal:>6.2f} {over:>11}{note}"
        )
    new_calls = sum(t >= resumed_from for t in arrivals)
    print(f"resumed run of the last level: {new_calls} new model calls, {cached}/{len(results)} cached")
    print(f"requests above quota over the whole run: {above_quota(arrivals, args.quota, args.window)}")


if __name__ == "__main__":
    main()
