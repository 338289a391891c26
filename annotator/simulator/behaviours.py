"""The hook for model behaviours and faults: every answered request asks `Behaviours.before_answer` first.

The default plays none (an honest, instant, well-formed answer). A scenario subclasses `Behaviours` and returns
a `Fault` for the requests it wants to disturb, e.g.::

    class EveryThirdIsRateLimited(Behaviours):
        def before_answer(self, request: RequestInfo) -> Fault | None:
            if request.number % 3 == 0:
                return Fault(status=429, message="Resource has been exhausted", retry_after_s=2)
            return None

The server applies a fault in the wire format of the API that was called: `delay_s` first (a slow answer),
then either an error (`status`, `message`, `Retry-After` header from `retry_after_s`) or, with `answer_text`,
a 200 whose answer text is replaced (e.g. malformed JSON) or cut (`truncate_fraction`), usage counted as usual,
or a 200 without an answer (`empty`, `blocked`). Scripted scenarios (rules from a JSON file or CLI flags) are
in scenarios.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotator.simulator.prompt_reader import Stage


@dataclass(frozen=True)
class RequestInfo:
    number: int  # 1-based count of answerable requests (generateContent + chat completions) so far
    api: str  # "gemini" or "openai"
    endpoint: str  # "generateContent", "chat.completions"
    stage: Stage
    model: str
    start_s: float | None = None  # absolute range in the screenplay, when a video was shown
    end_s: float | None = None
    segment_index: int | None = None
    media_resolution: str | None = None  # Gemini generationConfig.mediaResolution as sent
    frames: int = 0  # > 0 when the clip came as sampled image frames (OpenAI image_url parts)
    received_s: float = 0.0  # time.monotonic() when the HTTP request arrived (a fixed latency counts from it)
    batch: bool = False  # an item of a batch (Gemini batchGenerateContent, OpenAI /v1/batches)
    # the generation settings as sent (None when the request left them out)
    max_output_tokens: int | None = None  # Gemini maxOutputTokens / OpenAI max_tokens
    temperature: float | None = None
    thinking_level: str | None = None
    thinking_budget: int | None = None


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # HTTP status of an error answer (429, 500, 503, …); None = answer normally
    message: str = "the v2s simulator injected this fault"
    retry_after_s: float | None = None  # sent as Retry-After (whole seconds, rounded up)
    delay_s: float = 0.0  # wait before answering (slow model, timeouts)
    answer_text: str | None = None  # replace the answer's text (malformed JSON, truncated output…)
    finish_reason: str | None = None  # e.g. "MAX_TOKENS" / "length", "SAFETY"
    truncate_fraction: float | None = None  # keep only this share of the answer's text (cut-off JSON)
    empty: bool = False  # a 200 with no candidates (Gemini) / no choices (OpenAI)
    blocked: str | None = None  # "candidate" (finish reason SAFETY) or "prompt" (promptFeedback.blockReason)
    # thinking used the whole output budget: finish MAX_TOKENS / length with no text, the budget billed as
    # thoughts (what 2.5/3.x Pro and Flash do when no thinking budget leaves room for the answer)
    exhaust_output: bool = False
    details: list[dict] | None = None  # error details sent with `status` (google.rpc RetryInfo, QuotaFailure)
    # the honest answer changed so it parses but breaks its contract (misshapen.py: a wrapper key, misspelt
    # keys, an unknown character code, times outside the clip, a looping answer of `size_bytes`)
    misshape: str | None = None
    size_bytes: int = 2_000_000


class Behaviours:
    """No faults: every request gets the screenplay's answer at once."""

    def before_answer(self, request: RequestInfo) -> Fault | None:
        del request
        return None
