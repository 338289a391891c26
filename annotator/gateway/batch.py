"""Provider batch jobs: many requests of one stage in one asynchronous job, billed at the batch tier.

A backend that has batches (Gemini's `batches`, an OpenAI-compatible server's `/v1/batches`) implements
`BatchBackend`. `BatchRun` is what the stages use: it turns validated-answer requests into batch items keyed
by the caller's keys (segment ids), reads a finished batch back by key, validates each answer with the same
rules as a synchronous call (`check_answer`), and says which items need another batch: a failed item is sent
again as it was, an answer that did not validate is sent again as a repair turn, one refused because its
context cache is gone is sent again with the video itself, until `batch_rounds` batches have held it. Nothing here waits or knows where a batch's name is kept: the caller polls and persists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from annotator.gateway.base import ModelCallError, ModelRequest, ModelResponse, Outcome
from annotator.gateway.structured import (
    StageAsk,
    StructuredResult,
    Usage,
    check_answer,
    first_request,
    gave_up,
    repair_request,
)
from annotator.settings import ModelSettings

BatchState = Literal["open", "done", "failed", "cancelled", "expired"]


class BatchItemResult(BaseModel):
    """One item of a finished batch: its answer, or why it has none."""

    key: str
    response: ModelResponse | None = None
    error: str | None = None
    outcome: Outcome = "done"
    billed: ModelResponse | None = None  # a blocked or empty answer's tokens: billed though refused
    cache_gone: bool = False  # refused because the context cache it named has expired or was deleted


def read_item(key: str, model: str, to_response: Callable[[ModelRequest], ModelResponse]) -> BatchItemResult:
    """A batch item's answer through the backend's own reading of a response (`to_response` is given the
    request it answers): empty, blocked and filtered answers become the item's error, as in a call."""
    request = ModelRequest(stage="batch", model=model, prompt="", prompt_version="", tier="batch")
    try:
        answer = to_response(request)
    except ModelCallError as exc:  # BlockedError included: its outcome is "blocked"
        billed = exc.billed.model_copy(update={"tier": "batch"}) if exc.billed is not None else None
        return BatchItemResult(key=key, error=str(exc), outcome=exc.outcome, billed=billed)
    return BatchItemResult(key=key, response=answer.model_copy(update={"tier": "batch"}))


class BatchSnapshot(BaseModel):
    """A batch as the provider reports it; `results` once it is done (keyed like the requests)."""

    name: str
    state: BatchState
    results: dict[str, BatchItemResult] = {}
    error: str | None = None


class BatchBackend(Protocol):
    def supports_batches(self) -> bool:
        """Whether the server has a batch API (DeepSeek's has none: its stages make standard calls)."""
        ...

    def submit_batch(self, model: str, requests: dict[str, ModelRequest], display_name: str) -> str:
        """Create a batch of `requests` (key → request); returns its name."""
        ...

    def find_batch(self, display_name: str) -> str | None:
        """A live or finished batch created under `display_name` (a create whose answer was lost)."""
        ...

    def batch(self, name: str, model: str) -> BatchSnapshot: ...

    def cancel_batch(self, name: str) -> None: ...


def display_name(job: str, stage: str, attempt: int, keys: list[str]) -> str:
    """A batch's name for finding it again: the same job, stage, attempt and items give the same name."""
    digest = hashlib.sha256(f"{job}|{stage}|{attempt}|{','.join(sorted(keys))}".encode()).hexdigest()
    return f"v2s-{stage}-{attempt}-{digest[:24]}"


class ItemState(BaseModel):
    """Where one item stands across batches: its next request and the usage it has cost so far."""

    request: ModelRequest
    usage: Usage = Usage()
    attempts: int = 0  # batches that held it
    problem: str = ""


class BatchRun:
    """The batch items of one stage: first requests, then what each finished batch says of them."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings

    def item(self, ask: StageAsk) -> ItemState:
        request = first_request(self.settings, ask.stage, ask.model, ask.prompt, ask.schema_type, ask.media)
        return ItemState(request=request.model_copy(update={"tier": "batch"}))

    def settle(
        self, ask: StageAsk, state: ItemState, found: BatchItemResult | None
    ) -> StructuredResult | None:
        """The item's final result, or None when it goes into the next batch (`state.request` updated)."""
        state.attempts += 1

        def result(**kw: Any) -> StructuredResult:
            return StructuredResult[ask.schema_type](
                model=ask.model, prompt_version=ask.prompt.version, usage=state.usage, **kw
            )

        media = state.request.media
        if found is not None and found.cache_gone and media is not None and media.cache_name:
            # The cache expired (or was deleted) before the batch ran the item: sending the same request again
            # fails the same way, so the next batch shows the video itself. Not the item's fault: no round lost.
            state.attempts -= 1
            state.request = state.request.model_copy(
                update={"media": media.model_copy(update={"cache_name": None})}
            )
            return None
        last = state.attempts >= self.settings.batch_rounds
        if found is not None and found.billed is not None:
            state.usage.add(found.billed, self.settings.price(ask.model).cost_of(found.billed))
        if found is None or found.response is None:
            error = found.error if found is not None else "the batch returned no answer for this item"
            outcome = found.outcome if found is not None else "empty"
            if last or outcome in ("blocked", "auth"):
                return result(outcome=outcome, error=f"{error} (batch attempt {state.attempts})")
            return None
        response = found.response
        state.usage.add(response, self.settings.price(ask.model).cost_of(response))
        checked = check_answer(
            response, ask.schema_type, ask.contract, max_output_tokens=state.request.max_output_tokens
        )
        if checked.value is not None:
            return result(value=checked.value, reasoning_content=response.reasoning_content)
        if last:
            return result(
                outcome=checked.outcome,
                error=gave_up(ask.stage, checked.outcome, state.usage.calls, checked.problem),
            )
        state.problem = checked.problem
        state.request = repair_request(
            state.request, response, checked.problem, self.settings, echo=not checked.oversized
        )
        return None
