"""Scripted faults on demand: a scenario is a list of rules, each saying which requests get which fault.

A scenario comes from a JSON file (`v2s sim-server --faults FILE`), from short flags
(`--fault rate_limit@script:2`), or from Python (`SimulatorServer(play, behaviours=Scenario(...))`)::

    {"rules": [
        {"kind": "rate_limit", "stage": "script", "times": 2, "retry_after_s": 1},
        {"kind": "malformed_json", "stage": "distill"},
        {"kind": "blocked", "segment": 3},
        {"kind": "files_processing"}
    ]}

A rule matches a model call when every filter it sets matches (api, stage, model, segment, request numbers);
`times` = N plays the fault on the first N matching calls and then lets them through ("first N times then
OK"); no `times` plays it always. The first matching rule that still has plays left wins. Faults are played in
the wire format of the API that was called (server.py, http_handler.py).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, PrivateAttr

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.misshapen import MISSHAPES

FaultKind = Literal[
    "rate_limit",  # 429 RESOURCE_EXHAUSTED / rate_limit_exceeded with Retry-After
    "rate_limit_retry_info",  # Gemini's 429: the wait only in the body (RetryInfo.retryDelay), no header
    "daily_quota",  # Gemini's 429 for a spent per-day quota (QuotaFailure, quotaId …PerDay…)
    "server_error",  # 500 INTERNAL
    "unavailable",  # 503 UNAVAILABLE
    "slow",  # the normal answer after delay_s
    "timeout",  # delay_s (default 30 s) and then the answer: longer than a client's per-call timeout
    "malformed_json",  # 200 whose text is not JSON
    "truncated_json",  # the answer cut in half, finish reason MAX_TOKENS (Gemini) / length (OpenAI)
    "max_tokens_empty",  # thinking used the whole output budget: MAX_TOKENS / length and no text at all
    "schema_violation",  # valid JSON that does not follow the requested schema
    "empty",  # no candidates (Gemini) / no choices (OpenAI)
    "blocked",  # candidate stopped for SAFETY (Gemini) / finish reason content_filter (OpenAI)
    "prompt_blocked",  # promptFeedback.blockReason SAFETY, no candidates (Gemini; OpenAI: content_filter)
    # the answer would quote long verbatim text (a script's dialogue): finishReason RECITATION and no content
    # (google/generative-ai-docs#518); OpenAI-compatible gateways map it to content_filter (litellm)
    "recitation",
    "files_processing",  # uploaded files never leave PROCESSING (not a per-call fault)
    # answers that parse but break their contract, made from the honest one (misshapen.py)
    "wrapped_answer",  # the whole answer under one top-level key, {"response": {...}}
    "misspelt_keys",  # `dialog` for `dialogue`, `narration` for `narrative`: content the schema would drop
    "unknown_code",  # a character code (char_999) neither given in the prompt nor declared new
    "times_outside",  # every time an hour late (counted from the film's start, not the clip's)
    "oversized",  # a looping answer of size_bytes (2 MB), its output tokens reported in proportion
    "degenerate_template",  # every key kept, no data: blank texts, empty lists (Gemini batch + responseJsonSchema)
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
# Stage names a rule may use: the engine's stage names, or the simulator's finer ones.
_STAGE_ALIASES = {"plot": {"plot_first", "plot_next"}}

_RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on "
    f"this error, head to: {_RATE_LIMITS_URL}."
)
MALFORMED_TEXT = 'Sure! Here is the JSON you asked for: {"segment_info": oops this is not JSON'
SCHEMA_VIOLATION_TEXT = '{"note": "this object follows none of the schema", "items": [1, 2, 3]}'


class FaultRule(BaseModel):
    """One kind of fault and the calls it applies to (unset filters match everything)."""

    kind: FaultKind
    api: Literal["gemini", "openai"] | None = None
    stage: str | None = None  # plot (= plot_first or plot_next), plot_first, plot_next, script, distill
    model: str | None = None
    segment: int | None = None  # provenance segment index of the clip shown (calls with a video only)
    requests: list[int] | None = None  # 1-based model-call numbers of the whole server
    batch: bool | None = None  # True: batch items only; False: synchronous calls only
    times: int | None = Field(default=None, ge=1)  # first N matching calls only; None = always
    per_segment: bool = False  # `times` counts each segment's calls apart: a glitch once per segment
    retry_after_s: float | None = 1.0  # rate_limit: sent as Retry-After (None = no header)
    retry_delay_s: float = 1.0  # rate_limit_retry_info, daily_quota: RetryInfo.retryDelay in the body
    delay_s: float | None = None  # slow / timeout: seconds before answering
    size_bytes: int = Field(default=2_000_000, ge=1)  # oversized: the answer's length
    message: str | None = None

    def matches(self, info: RequestInfo) -> bool:
        if self.kind == "files_processing":
            return False
        if self.api is not None and info.api != self.api:
            return False
        if self.stage is not None and info.stage.value not in _STAGE_ALIASES.get(self.stage, {self.stage}):
            return False
        if self.model is not None and info.model != self.model:
            return False
        if self.segment is not None and info.segment_index != self.segment:
            return False
        if self.batch is not None and info.batch != self.batch:
            return False
        return self.requests is None or info.number in self.requests

    def fault(self, info: RequestInfo) -> Fault:
        """The fault of this rule in terms the server plays, in the called API's vocabulary."""
        gemini = info.api == "gemini"
        kind = self.kind
        if kind == "rate_limit":
            return Fault(
                status=429,
                message=self.message
                or ("Resource has been exhausted (e.g. check quota)." if gemini else "Rate limit reached."),
                retry_after_s=self.retry_after_s,
            )
        if kind in ("rate_limit_retry_info", "daily_quota"):
            return Fault(
                status=429, message=self.message or _QUOTA_MESSAGE, details=self._quota_details(info)
            )
        if kind in ("server_error", "unavailable"):
            status = 500 if kind == "server_error" else 503
            default = "An internal error has occurred." if status == 500 else "The model is overloaded."
            return Fault(status=status, message=self.message or default)
        if kind in ("slow", "timeout"):
            return Fault(
                delay_s=self.delay_s if self.delay_s is not None else (2.0 if kind == "slow" else 30.0)
            )
        if kind == "malformed_json":
            return Fault(answer_text=MALFORMED_TEXT)
        if kind == "schema_violation":
            return Fault(answer_text=SCHEMA_VIOLATION_TEXT)
        if kind == "truncated_json":
            return Fault(truncate_fraction=0.5, finish_reason="MAX_TOKENS" if gemini else "length")
        if kind == "max_tokens_empty":
            return Fault(exhaust_output=True, finish_reason="MAX_TOKENS" if gemini else "length")
        if kind == "empty":
            return Fault(empty=True)
        if kind == "blocked":
            return Fault(blocked="candidate", finish_reason="SAFETY" if gemini else "content_filter")
        if kind == "recitation":
            return Fault(blocked="candidate", finish_reason="RECITATION" if gemini else "content_filter")
        if kind == "prompt_blocked":
            return Fault(blocked="prompt", finish_reason=None if gemini else "content_filter")
        if kind in MISSHAPES:
            return Fault(misshape=kind, size_bytes=self.size_bytes)
        raise ValueError(f"fault kind {kind!r} is not a per-call fault")

    def _quota_details(self, info: RequestInfo) -> list[dict]:
        """QuotaFailure, Help and RetryInfo as Gemini sends them (the bodies quoted in google-gemini/gemini-cli#8437, langgenius/dify#19838)."""
        per = "Day" if self.kind == "daily_quota" else "Minute"
        violation = {
            "quotaMetric": f"generativelanguage.googleapis.com/generate_requests_per_model_per_{per.lower()}",
            "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel",
            "quotaDimensions": {"location": "global", "model": info.model},
        }
        return [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"url": _RATE_LIMITS_URL}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_delay_s:g}s"},
        ]


class Scenario(Behaviours, BaseModel):
    """Behaviours from rules. Thread-safe: the server answers calls on many threads."""

    rules: list[FaultRule] = Field(default_factory=list)
    _played: dict[tuple[int, int | None], int] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def files_stuck_processing(self) -> bool:  # read by SimulatorServer for its Files API
        return any(rule.kind == "files_processing" for rule in self.rules)

    def before_answer(self, request: RequestInfo) -> Fault | None:
        with self._lock:
            for i, rule in enumerate(self.rules):
                if not rule.matches(request):
                    continue
                key = (i, request.segment_index if rule.per_segment else None)
                if rule.times is not None and self._played.get(key, 0) >= rule.times:
                    continue
                self._played[key] = self._played.get(key, 0) + 1
                return rule.fault(request)
        return None

    def played(self) -> list[int]:
        """How many calls each rule has disturbed so far (tests read this)."""
        with self._lock:
            return [
                sum(n for (rule, _), n in self._played.items() if rule == i) for i in range(len(self.rules))
            ]

    # -- loading -------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Scenario:
        return cls.model_validate_json(Path(path).read_text())

    @classmethod
    def from_flags(cls, flags: list[str]) -> Scenario:
        """Rules from `KIND[@STAGE][:TIMES]` flags, e.g. `rate_limit@script:2`, `unavailable`, `empty@distill`."""
        return cls(rules=[parse_flag(flag) for flag in flags])

    def plus(self, other: Scenario) -> Scenario:
        return Scenario(rules=[*self.rules, *other.rules])


def parse_flag(flag: str) -> FaultRule:
    text = flag.strip()
    times: int | None = None
    if ":" in text:
        text, count = text.rsplit(":", 1)
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--fault {flag!r}: the part after ':' must be a count ≥ 1 (first N calls)")
        times = int(count)
    kind, _, stage = text.partition("@")
    if kind not in FAULT_KINDS:
        raise ValueError(f"--fault {flag!r}: unknown kind {kind!r}; choose one of {', '.join(FAULT_KINDS)}")
    return FaultRule(kind=kind, stage=stage or None, times=times)  # type: ignore[arg-type]


def stuck_processing_s(behaviours: Behaviours, default: float) -> float:
    """The Files API's PROCESSING period under these behaviours (forever when a scenario says so)."""
    return math.inf if getattr(behaviours, "files_stuck_processing", False) else default
