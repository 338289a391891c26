"""Retrying model calls with tenacity: exponential backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from annotator.gateway.base import RetryableError

log = logging.getLogger(__name__)
T = TypeVar("T")


class _WaitRetryAfter:
    """Wait what the server asked for (Retry-After), else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after_s is not None:
            return max(0.0, exc.retry_after_s)
        return self._backoff(state)


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int,
    initial_wait_s: float = 1.0,
    max_wait_s: float = 60.0,
    what: str = "",
) -> T:
    def _log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: attempt %d failed (%s); retrying", what or "model call", state.attempt_number, exc)

    retrying = Retrying(
        retry=retry_if_exception_type(RetryableError),
        stop=stop_after_attempt(max(1, attempts)),
        wait=_WaitRetryAfter(initial_wait_s, max_wait_s),
        before_sleep=_log,
        reraise=True,
    )
    return retrying(fn)
