"""Structured answers: ask, parse tolerantly, validate with pydantic, repair by quoting the error, or fail clearly."""

from __future__ import annotations

import json
import logging
import re
from functools import cache
from typing import Generic, TypeVar

import json_repair
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.gateway.base import (
    Backend,
    Media,
    ModelCallError,
    ModelRequest,
    ModelResponse,
    Outcome,
    RecitationError,
)
from annotator.gateway.retry import call_with_retries
from annotator.gateway.tiers import TierFallback
from annotator.prompting import Prompt
from annotator.schemas.contract import AnswerContract, breaches, extra_keys
from annotator.settings import ModelSettings

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
# An answer's size bound from the output tokens asked for: JSON prose is ~4 bytes a token and CJK text ~5, so 16
# leaves room for any honest answer while a looping one (MBs of one phrase, google-gemini/cookbook#327) is refused.
MAX_BYTES_PER_TOKEN = 16


@cache
def answer_schema(schema: type[BaseModel]) -> dict:
    """The JSON Schema sent with every request of a stage; generating it costs ~20 ms, so once per class.
    Callers must not mutate it (the backends only serialise it)."""
    return schema.model_json_schema(mode="validation")


class InvalidAnswer(ValueError):
    pass


def parse_json_object(text: str) -> dict:
    """The JSON object in a model's answer, tolerating code fences, prose around it and trailing commas."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = body.find("{")
    if start < 0:
        raise InvalidAnswer("the answer contains no JSON object")
    try:
        value = json.loads(body[start : body.rfind("}") + 1])
    except ValueError:
        value = json_repair.loads(body[start:])
    if not isinstance(value, dict) or not value:
        raise InvalidAnswer("the answer is not a JSON object")
    return value


def describe(exc: ValidationError, limit: int = 8) -> str:
    """A compact, model-readable list of what failed validation."""
    lines = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"- {where}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        lines.append(f"- … and {more} more problems")
    return "\n".join(lines)


class Usage(BaseModel):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached_tokens: int = 0  # of input_tokens, read from a context cache
    thinking_tokens: int = 0  # of output_tokens, the model's thinking (as the provider reports it)
    tier: str = "standard"  # the tier of the last call (a Flex call that fell back ends "standard")

    def add(self, response: ModelResponse, cost: float) -> None:
        self.calls += 1
        self.input_tokens += response.input_tokens
        self.output_tokens += response.output_tokens
        self.cached_tokens += response.cached_tokens
        self.thinking_tokens += response.thinking_tokens
        self.cost_usd += cost
        self.tier = response.tier


class StageAsk(BaseModel):
    """One stage's request for a validated answer, before it is sent (a call, or an item of a batch)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    stage: str
    backend: str
    model: str
    prompt: Prompt
    schema_type: type[BaseModel]
    media: Media | None = None
    contract: AnswerContract = Field(default_factory=AnswerContract)  # what the prompt told the model


class StructuredResult(BaseModel, Generic[T]):
    value: T | None = None
    outcome: Outcome = "done"
    error: str | None = None
    model: str
    prompt_version: str
    usage: Usage
    reasoning_content: str | None = None
    cached: bool = False  # answered from the response cache: no call was made, usage is zero

    @property
    def ok(self) -> bool:
        return self.value is not None


def ask_structured(
    backend: Backend,
    settings: ModelSettings,
    *,
    stage: str,
    model: str,
    prompt: Prompt,
    schema: type[T],
    media: Media | None = None,
    contract: AnswerContract | None = None,
) -> StructuredResult[T]:
    """One stage's model exchange: the first ask plus up to `settings.repair_turns` repair turns."""
    usage = Usage()
    request = first_request(settings, stage, model, prompt, schema, media)

    def result(**kw) -> StructuredResult[T]:
        return StructuredResult[schema](model=model, prompt_version=prompt.version, usage=usage, **kw)

    problem = ""
    outcome: Outcome = "invalid_output"
    tiering = TierFallback(settings.call_tier(stage), settings.flex_max_sheds)
    price = settings.price(model)

    def attempt(req: ModelRequest) -> ModelResponse:
        """One HTTP attempt; a refused answer the provider still bills (blocked, empty) is counted too."""
        try:
            return tiering.generate(backend, req)
        except ModelCallError as exc:
            if exc.billed is not None:
                usage.add(exc.billed, price.cost_of(exc.billed))
            raise

    for turn in range(settings.repair_turns + 1):
        try:
            response = call_with_retries(
                lambda req=request: attempt(req),
                attempts=settings.max_attempts,
                initial_wait_s=settings.retry_initial_wait_s,
                max_wait_s=settings.retry_max_wait_s,
                what=f"{stage} ({model})",
            )
        except RecitationError as exc:  # billed (attempt() counted it); asked again, differently
            problem, outcome = str(exc), "blocked"
            log.info(
                "%s answer stopped for RECITATION (turn %d); asking for paraphrased dialogue", stage, turn + 1
            )
            request = recitation_request(request)
            continue
        except ModelCallError as exc:
            tries = f" (gave up after {settings.max_attempts} attempts)" if exc.retryable else ""
            return result(outcome=exc.outcome, error=f"{exc}{tries}")
        usage.add(response, price.cost_of(response))
        checked = check_answer(response, schema, contract, max_output_tokens=request.max_output_tokens)
        if checked.value is not None:
            return result(value=checked.value, reasoning_content=response.reasoning_content)
        problem, outcome = checked.problem, checked.outcome
        log.info("%s answer failed validation (turn %d): %s", stage, turn + 1, problem)
        request = repair_request(request, response, problem, settings, echo=not checked.oversized)
    return result(outcome=outcome, error=gave_up(stage, outcome, usage.calls, problem))


def gave_up(stage: str, outcome: Outcome, calls: int, problem: str) -> str:
    what = {
        "truncated": "was cut off (max output tokens)",
        "blocked": "was stopped for recitation every time, paraphrasing asked (RECITATION)",
    }.get(outcome, "never matched the schema")
    return f"{stage} answer {what} after {calls} calls: {problem}"


class CheckedAnswer(BaseModel):
    """An answer validated against the stage's schema: the value, or what is wrong with it."""

    value: BaseModel | None = None
    problem: str = ""
    outcome: Outcome = "done"
    oversized: bool = False  # refused for its size: a repair turn must not send it back


def check_answer(
    response: ModelResponse,
    schema: type[BaseModel],
    contract: AnswerContract | None = None,
    *,
    max_output_tokens: int | None = None,
) -> CheckedAnswer:
    """Parse and validate one answer (a call's or a batch item's): the same rules for both. Beyond the schema:
    its size against the output asked for, its semantic minimums (`missing()`), and its contract (unknown
    keys, character codes it was not given, times outside the clip: annotator/schemas/contract.py)."""
    oversized = _oversized(response, max_output_tokens)
    if oversized:
        return CheckedAnswer(problem=oversized, outcome="invalid_output", oversized=True)
    try:
        if response.truncated:  # a repaired cut-off answer may validate but is missing its end
            raise InvalidAnswer("the answer was cut off at the output token limit")
        raw = parse_json_object(response.text)
        # unknown keys first, also when validation fails: a wrapper key or a misspelt field is the likely cause
        lines = [f"- {line}" for line in filter(None, [extra_keys(schema, raw)])]
        try:
            value = schema.model_validate(raw)
        except ValidationError as exc:
            raise InvalidAnswer("\n".join([*lines, describe(exc)])) from None
        lines += [f"- {line}" for line in breaches(value, contract or AnswerContract())]
        lacking = value.missing() if hasattr(value, "missing") else None  # semantic minimums (schemas say)
        if lacking:
            lines.append(f"- {lacking}")
        if lines:
            raise InvalidAnswer("\n".join(lines))
        return CheckedAnswer(value=value)
    except InvalidAnswer as exc:
        return CheckedAnswer(
            problem=str(exc), outcome="truncated" if response.truncated else "invalid_output"
        )


def _oversized(response: ModelResponse, max_output_tokens: int | None) -> str | None:
    """Why an answer is too large to be a real answer to the request, or None. Its tokens stay billed (the
    caller counted them before checking); it is never parsed, stored or written."""
    if max_output_tokens is None:
        return None
    if response.output_tokens > max_output_tokens:
        return (
            f"the answer reports {response.output_tokens:,} output tokens, above the {max_output_tokens:,} "
            "asked for (a runaway answer); reply with the JSON object only, concisely, repeating nothing"
        )
    size = len(response.text.encode())
    if size > max_output_tokens * MAX_BYTES_PER_TOKEN:
        return (
            f"the answer is {size:,} bytes, more than {max_output_tokens:,} output tokens can hold (a runaway "
            "answer); reply with the JSON object only, concisely, repeating nothing"
        )
    return None


def first_request(
    settings: ModelSettings,
    stage: str,
    model: str,
    prompt: Prompt,
    schema: type[BaseModel],
    media: Media | None,
) -> ModelRequest:
    """The stage's first request; its media at the stage's resolution unless the caller chose one."""
    resolution = getattr(settings, f"{stage}_media_resolution", None)
    if media is not None and media.resolution is None and resolution:
        media = media.model_copy(update={"resolution": resolution})
    return ModelRequest(
        stage=stage,
        model=model,
        prompt=prompt.text,
        prompt_version=prompt.version,
        media=media,
        response_schema=answer_schema(schema),
        schema_name=schema.__name__,
        max_output_tokens=settings.max_output_for(model),
        temperature=settings.temperature_for(model),
        thinking=settings.thinking_for(model),
    )


def repair_request(
    request: ModelRequest,
    response: ModelResponse,
    problem: str,
    settings: ModelSettings,
    *,
    echo: bool = True,
) -> ModelRequest:
    """The next turn: the exchange so far as history, and a prompt that says what to fix.

    An answer cut off at the output limit is asked again shorter, with the model's largest output budget and
    one step less thinking (thinking counts against the same budget: on 2.5/3.x it can use all of it and leave
    no text). An answer with no text is not repeated back: Gemini refuses an empty part (400 "required oneof
    field 'data'"), so the prompt is asked again with the hint appended; nor is one refused for its size
    (`echo=False`): megabytes of a looping answer would be paid for again as input."""
    if not response.truncated:
        hint = (
            f"Your answer does not match the required JSON structure:\n{problem}\n"
            "Reply again with the whole corrected JSON object and nothing else."
        )
        return _next_turn(request, response if echo else response.model_copy(update={"text": ""}), hint)
    hint = (
        "Your answer was cut off at the output token limit. Reply again with the complete JSON object, more "
        "concisely: keep every required field, write shorter texts, and think less before answering."
    )
    return _next_turn(request, response, hint).model_copy(update=_more_room(request, settings))


RECITATION_HINT = (
    "Your previous answer was stopped because it reproduced long passages of text verbatim. Reply again with "
    "the whole JSON object, but put every line of dialogue in your own words or shorten it: quote no more than "
    "a few words of any line verbatim, and copy no other text at length."
)
# Gemini's highest temperature; a step up is what users report gets past RECITATION (generative-ai-docs#257)
MAX_TEMPERATURE = 2.0
RECITATION_TEMPERATURE_STEP = 0.2


def recitation_request(request: ModelRequest) -> ModelRequest:
    """The next turn after a RECITATION stop: the same exchange (a stopped answer has no text to repeat back),
    the prompt asking for paraphrased dialogue (once), and the temperature a step higher."""
    prompt = request.prompt if RECITATION_HINT in request.prompt else f"{request.prompt}\n\n{RECITATION_HINT}"
    temperature = min(MAX_TEMPERATURE, request.temperature + RECITATION_TEMPERATURE_STEP)
    return request.model_copy(update={"prompt": prompt, "temperature": temperature})


def _next_turn(request: ModelRequest, response: ModelResponse, hint: str) -> ModelRequest:
    if not response.text.strip():
        return request.model_copy(update={"prompt": f"{request.prompt}\n\n{hint}"})
    history = [*request.history, ("user", request.prompt), ("assistant", response.text)]
    return request.model_copy(update={"history": history, "prompt": hint})


def _more_room(request: ModelRequest, settings: ModelSettings) -> dict:
    """A larger output budget (up to the model's documented maximum) and lower thinking, where possible."""
    price = settings.price(request.model)
    update: dict = {"max_output_tokens": max(request.max_output_tokens, price.max_output_tokens or 0)}
    lowered = price.thinking.lower(request.thinking) if price.thinking else None
    if lowered is not None:
        update["thinking"] = lowered
    return update
