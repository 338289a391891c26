"""One rate limiter per model for the whole Ray cluster: a named async actor holding that model's window.

Lifetime: detached. A provider quota belongs to the API key, not to a job, so two jobs on one cluster must draw
from the same window, and a job that ends (or crashes) must not take the window with it while the other is
mid-minute. The actor is tiny; `ray stop` ends it. Its limits are re-sent by every process that opens it, so a
new job with new V2S_RATE_LIMITS updates the window in place (last writer wins).

Fairness: the jobs waiting for a model take turns (`FairQueue`: round-robin across Ray jobs, first come first
within one), so a job submitted behind a 10,000-video job is not held until the big one has sent everything.
The actor is async, so a caller waiting for the window costs a suspended coroutine, not a thread, and never
blocks `settle` or `penalise` from others.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter

import ray

from annotator.gateway.limiter import FairQueue, Reservation, WindowLimits
from annotator.settings import RateLimit

NAMESPACE = "v2s"
ABSENT_RECHECK_S = 5.0


def actor_name(model: str) -> str:
    return f"v2s-rate-limit:{model}"


@ray.remote(num_cpus=0, max_concurrency=10_000)
class ModelRateLimiter:
    def __init__(self, model: str, limit: dict, window_s: float) -> None:
        self.model = model
        self.limits = WindowLimits(RateLimit.model_validate(limit), window_s)
        self._queue = FairQueue()
        self._changed: asyncio.Condition | None = None  # made inside the actor's event loop
        self.granted = Counter()  # per client (Ray job id)

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def configure(self, limit: dict, window_s: float) -> None:
        async with self._cond():
            self.limits.limit = RateLimit.model_validate(limit)
            self.limits.window_s = window_s
            self._cond().notify_all()

    async def acquire(self, est_tokens: int, client: str = "") -> Reservation:
        ticket, served = object(), False
        cond = self._cond()
        async with cond:
            self._queue.join(client, ticket)
            try:
                while True:
                    wait = None
                    if self._queue.head() is ticket:
                        wait = self.limits.wait_s(est_tokens, time.monotonic())
                        if wait <= 0:
                            served = True
                            self.granted[client] += 1
                            return self.limits.reserve(self.model, est_tokens, time.monotonic())
                    # a settle or penalise may change the answer before `wait` is over
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(cond.wait(), timeout=wait)
            finally:
                self._queue.leave(client, ticket, served=served)
                cond.notify_all()

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        async with self._cond():
            self.limits.settle(reservation, actual_tokens, time.monotonic())
            self._cond().notify_all()

    async def penalise(self, retry_after_s: float | None) -> float:
        async with self._cond():
            until = self.limits.penalise(retry_after_s, time.monotonic())
            self._cond().notify_all()
            return until

    async def stats(self) -> dict:
        return {
            "granted_total": sum(self.granted.values()),
            "granted_by_client": dict(self.granted),
            "in_window": self.limits.in_window(time.monotonic()),
            "waiting": len(self._queue),
            "cooldown_s": max(0.0, self.limits.cooldown_until - time.monotonic()),
        }


def limiter_actor(model: str, limit: RateLimit, window_s: float):
    """The model's actor, created on first use by whichever process gets there first."""
    handle = ModelRateLimiter.options(
        name=actor_name(model), namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(model, limit.model_dump(), window_s)
    ray.get(handle.configure.remote(limit.model_dump(), window_s))
    return handle


class ClusterRateLimiter:
    """The `RateLimiter` protocol over the per-model actors; a model without a limit never leaves the process
    (until a 429 for it: then it gets an actor too, so the cooldown reaches every worker)."""

    def __init__(self, limits: dict[str, RateLimit], *, window_s: float = 60.0) -> None:
        self._limits = {m: lim for m, lim in limits.items() if lim.rpm or lim.tpm}
        self._window_s = window_s
        self._handles: dict[str, object] = {}
        self._absent_until: dict[str, float] = {}  # unlimited models with no actor: look again after this
        self._lock = threading.Lock()

    def _handle(self, model: str, *, create: bool):
        with self._lock:
            if model not in self._handles:
                if model in self._limits or create:
                    limit = self._limits.get(model, RateLimit())
                    self._handles[model] = limiter_actor(model, limit, self._window_s)
                else:
                    # another worker may have been told 429 for this model; asking the GCS on every call would
                    # cost a round trip, so a miss is remembered for a few seconds
                    if time.monotonic() < self._absent_until.get(model, 0.0):
                        return None
                    try:
                        self._handles[model] = ray.get_actor(actor_name(model), namespace=NAMESPACE)
                    except ValueError:
                        self._absent_until[model] = time.monotonic() + ABSENT_RECHECK_S
                        return None
            return self._handles[model]

    def acquire(self, model: str, est_tokens: int) -> Reservation:
        handle = self._handle(model, create=False)
        if handle is None:
            return Reservation(model=model)
        # the Ray job is the client the actor rotates between: every task of one v2s job shares its driver's id
        return ray.get(handle.acquire.remote(est_tokens, ray.get_runtime_context().get_job_id()))

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.id:
            handle = self._handle(reservation.model, create=False)
            if handle is not None:
                handle.settle.remote(reservation, actual_tokens)  # nobody needs to wait for the bookkeeping

    def penalise(self, model: str, retry_after_s: float | None) -> None:
        ray.get(self._handle(model, create=True).penalise.remote(retry_after_s))
