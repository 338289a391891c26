"""Rate limits per model: a protocol, the window arithmetic, and an in-process limiter.

Why a sliding window log and not a token bucket: a bucket that starts full lets through its capacity plus a
window's refill inside one window, i.e. up to twice the quota, and providers count requests in a window. The
log grants a request only while fewer than `rpm` requests are still counted in the window (and the tokens
counted there stay under `tpm`), so no window ever sees more than the quota. A request counts from its grant
until a window after its settle (see WindowLimits), since the provider saw it arrive somewhere in between.

Reserve, then correct: a caller reserves an estimate of its tokens before the call and `settle`s the actual
usage after, so a short answer frees its unused share of the window. A 429 `penalise`s the model: every caller
of that model waits out the cooldown, not only the one that was told.

The cluster-wide limiter (workers/rate_limiter.py) runs the same `WindowLimits` inside one Ray actor per model.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel

from annotator.settings import RateLimit

# Kept on top of the window (see WindowLimits.span): 2 % of it (1.2 s of a minute), at least 0.1 s.
WINDOW_MARGIN = 0.02
MIN_MARGIN_S = 0.1
# A 429 without Retry-After still means "slow down": wait this long before anyone asks that model again.
DEFAULT_COOLDOWN_S = 5.0


class Reservation(BaseModel):
    model: str
    id: int = 0  # 0 = nothing was reserved (the model has no limit)
    tokens: int = 0
    granted_at: float = 0.0  # the limiter's clock when the request was let through


class RateLimiter(Protocol):
    def acquire(self, model: str, est_tokens: int) -> Reservation:
        """Block until a request of about `est_tokens` may be sent to `model`, and reserve it."""
        ...

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the estimate with what the call really used (0 if it failed before using any)."""
        ...

    def penalise(self, model: str, retry_after_s: float | None) -> None:
        """The provider said 429: nobody sends to `model` until the cooldown is over."""
        ...


class WindowLimits:
    """The arithmetic of one model's quota. Not thread-safe: callers hold a lock or run in one event loop.

    A request counts from its grant until `span` after it was settled (its answer came back, or it failed):
    the provider saw it arrive somewhere in between, so a window that ends `span` after the settle covers the
    provider's window however long the request took to get there."""

    def __init__(self, limit: RateLimit, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._at: dict[int, float] = {}  # reservation id -> when it counts from (grant, later its settle)
        self._tokens: dict[int, int] = {}  # reservation id -> tokens counted against the window
        self._ids = itertools.count(1)
        self.cooldown_until = 0.0

    @property
    def span(self) -> float:
        """The window we keep: the provider's plus a small margin for clock and network jitter."""
        return self.window_s + max(self.window_s * WINDOW_MARGIN, MIN_MARGIN_S)

    def _expire(self, now: float) -> list[tuple[float, int]]:
        """Drops what left the window; returns what is still in it, oldest first."""
        # `at + span <= now`, the very expression `wait_s` subtracts from, so float rounding cannot let a
        # request through while its window still counts an old one
        span = self.span
        for rid in [rid for rid, at in self._at.items() if at + span <= now]:
            del self._at[rid], self._tokens[rid]
        return sorted((at, rid) for rid, at in self._at.items())

    def wait_s(self, tokens: int, now: float) -> float:
        """0 when a request of `tokens` may go now, else how long until it might."""
        live = self._expire(now)
        waits = [self.cooldown_until - now]
        if self.limit.rpm is not None and len(live) >= self.limit.rpm:
            waits.append(live[len(live) - self.limit.rpm][0] + self.span - now)
        if self.limit.tpm is not None and live:
            used, need = sum(self._tokens.values()), min(tokens, self.limit.tpm)
            if used + need > self.limit.tpm:
                # the earliest moment enough old reservations have left the window
                freed = 0
                for at, rid in live:
                    freed += self._tokens[rid]
                    if used - freed + need <= self.limit.tpm:
                        waits.append(at + self.span - now)
                        break
        return max(0.0, *waits)

    def reserve(self, model: str, tokens: int, now: float) -> Reservation:
        rid = next(self._ids)
        counted = min(tokens, self.limit.tpm) if self.limit.tpm is not None else tokens
        self._at[rid] = now
        self._tokens[rid] = counted
        return Reservation(model=model, id=rid, tokens=counted, granted_at=now)

    def settle(self, reservation: Reservation, actual_tokens: int, now: float) -> None:
        if reservation.id in self._tokens:  # else it already left the window
            self._tokens[reservation.id] = max(0, actual_tokens)
            self._at[reservation.id] = max(self._at[reservation.id], now)

    def penalise(self, retry_after_s: float | None, now: float) -> float:
        """Returns the end of the cooldown on the limiter's clock."""
        wait = DEFAULT_COOLDOWN_S if retry_after_s is None else max(0.0, retry_after_s)
        self.cooldown_until = max(self.cooldown_until, now + wait)
        return self.cooldown_until

    def in_window(self, now: float) -> int:
        return len(self._expire(now))


class FairQueue:
    """The requests waiting for one model: round-robin across clients (jobs), first come first within a client.

    Why not one FIFO: a job that queued 10,000 requests first would hold every other job on the cluster until it
    had sent them all. Here each client with someone waiting gets the next turn in rotation, so a small job
    submitted later moves at the same pace as a big one. The caller serialises access (a lock or one loop)."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[object]] = {}  # dict order is the rotation: first key's turn next

    def join(self, client: str, ticket: object) -> None:
        self._waiting.setdefault(client, deque()).append(ticket)

    def head(self) -> object | None:
        """The ticket whose turn it is."""
        for tickets in self._waiting.values():
            return tickets[0]
        return None

    def leave(self, client: str, ticket: object, *, served: bool) -> None:
        tickets = self._waiting[client]
        tickets.remove(ticket)
        if not tickets:
            del self._waiting[client]
        elif served:  # its turn is used: to the back of the rotation
            self._waiting[client] = self._waiting.pop(client)

    def __len__(self) -> int:
        return sum(len(t) for t in self._waiting.values())


class LocalRateLimiter:
    """The limits of one process (a CLI run without Ray, tests): one client, so waiting callers are served first
    come first."""

    def __init__(
        self,
        limits: dict[str, RateLimit],
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._window_s = window_s
        self._limits = {m: WindowLimits(lim, window_s) for m, lim in limits.items() if lim.rpm or lim.tpm}
        self._clock = clock
        self._sleep = sleep  # a fake clock's sleep advances that clock; None = wait on the condition
        self._cond = threading.Condition()
        self._queues: dict[str, FairQueue] = {m: FairQueue() for m in self._limits}

    def acquire(self, model: str, est_tokens: int) -> Reservation:
        limits = self._limits.get(model)
        if limits is None:
            return Reservation(model=model)
        ticket, served = object(), False
        with self._cond:
            queue = self._queues[model]
            queue.join("", ticket)  # one process is one client
            try:
                while True:
                    if queue.head() is ticket:
                        wait = limits.wait_s(est_tokens, self._clock())
                        if wait <= 0:
                            served = True
                            return limits.reserve(model, est_tokens, self._clock())
                    else:
                        wait = None  # someone is ahead: wait until they are served
                    if self._sleep is not None and wait is not None:
                        self._cond.release()
                        try:
                            self._sleep(wait)
                        finally:
                            self._cond.acquire()
                    else:
                        self._cond.wait(wait)
            finally:
                queue.leave("", ticket, served=served)
                self._cond.notify_all()

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        limits = self._limits.get(reservation.model)
        if limits is None or not reservation.id:
            return
        with self._cond:
            limits.settle(reservation, actual_tokens, self._clock())
            self._cond.notify_all()

    def penalise(self, model: str, retry_after_s: float | None) -> None:
        with self._cond:  # an unlimited model gets a window too: its cooldown must hold back every caller
            if model not in self._limits:
                self._limits[model] = WindowLimits(RateLimit(), self._window_s)
                self._queues[model] = FairQueue()
            self._limits[model].penalise(retry_after_s, self._clock())
            self._cond.notify_all()
