"""What every backend takes and returns, and the errors the stages understand."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from annotator.pricing import Tier

# What became of a call, stored in stage_runs.outcome: one word per kind of failure, so a resume can pick one.
Outcome = Literal[
    "done",
    "truncated",  # max output tokens hit before the JSON was complete
    "blocked",  # safety / recitation block: deterministic, not retried
    "empty",  # no candidates / no choices
    "timeout",  # the call or the Files API processing took longer than allowed
    "rate_limited",  # 429s until the attempts ran out
    "server_error",  # 5xx until the attempts ran out
    "invalid_output",  # never matched the schema, repair turns included
    "error",
    "auth",  # credentials missing or rejected: fatal for the job
    "config",  # the settings name a model the server does not serve or the catalog cannot price
    "quota",  # a per-day quota is spent: the stage pauses until the quota resets, no attempts are burnt
]


class Media(BaseModel):
    """A video the model should watch: a local file, optionally a window of it (seconds within the file)."""

    path: Path
    sha256: str
    mime_type: str = "video/mp4"
    start_offset_s: float | None = None
    end_offset_s: float | None = None
    fps: float | None = None
    resolution: Literal["low", "medium", "high"] | None = None
    cache_name: str | None = None  # an explicit context cache holding this video (cachedContents/…)


class ModelRequest(BaseModel):
    stage: str
    model: str
    prompt: str
    prompt_version: str
    media: Media | None = None
    response_schema: dict | None = None  # JSON Schema of the expected answer
    schema_name: str | None = None
    history: list[tuple[str, str]] = Field(
        default_factory=list
    )  # (role, text) turns before `prompt` (repairs)
    max_output_tokens: int = 32768
    temperature: float = 0.2
    thinking: str | int | None = (
        None  # a thinking level (Gemini 3.x) or budget in tokens (2.5); None: default
    )
    tier: Tier = "standard"  # the service tier asked for (flex: half price, slower, may be shed)


class ModelResponse(BaseModel):
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    reasoning_content: str | None = None
    tier: Tier = "standard"  # the tier the call was served (and is billed) at
    cached_tokens: int = 0  # of input_tokens, those read from a context cache (billed at the cached price)
    # of output_tokens, the model's thinking (Gemini thoughtsTokenCount, OpenAI reasoning_tokens): `v2s plan`
    # prices thinking from what runs measured
    thinking_tokens: int = 0
    # the model that answered, as the response names it (Gemini modelVersion, OpenAI `model`); None when the
    # response does not say. `v2s check` compares it with the name asked for: an alias or a retired name may be
    # served by another model, billed at that model's price
    served_model: str | None = None

    @property
    def truncated(self) -> bool:
        return (self.finish_reason or "").upper() in {"MAX_TOKENS", "LENGTH"}


class Backend(Protocol):
    name: str

    def generate(self, request: ModelRequest) -> ModelResponse: ...

    def check_access(self, model: str) -> None:
        """One cheap authenticated call; raises ModelCallError(outcome="auth") when credentials are refused."""
        ...


class ModelCallError(RuntimeError):
    """A call that failed for good. `outcome` says why; the message never contains a secret."""

    def __init__(self, message: str, *, outcome: Outcome = "error", retryable: bool = False) -> None:
        super().__init__(message)
        self.outcome: Outcome = outcome
        self.retryable = retryable
        # an answer that was refused (blocked, empty) but billed: its tokens, so the attempt is paid for in usage
        self.billed: ModelResponse | None = None

    def with_billing(self, billed: ModelResponse) -> ModelCallError:
        self.billed = billed
        return self


class RetryableError(ModelCallError):
    """429, 5xx, timeouts, resets: worth another try, after `retry_after_s` if the server said so."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, outcome: Outcome = "error"
    ) -> None:
        super().__init__(message, outcome=outcome, retryable=True)
        self.retry_after_s = retry_after_s


class BlockedError(ModelCallError):
    """The provider refused to answer (safety, recitation): deterministic, retrying the same request is waste."""

    def __init__(self, message: str) -> None:
        super().__init__(message, outcome="blocked")


class RecitationError(BlockedError):
    """Gemini stopped the answer for RECITATION: it would have reproduced long verbatim text (for v2s, a script's
    dialogue quoted at length). The same request tends to stop the same way; a request that asks for the
    dialogue paraphrased or shortened, at a higher temperature, usually passes (structured.recitation_request)."""
