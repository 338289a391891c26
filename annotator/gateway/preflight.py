"""Before anything is split or paid for: every stage's model is served under its name and has a price, and
takes the stage's request.

A retired name, a model the catalog cannot price (it would be billed $0 in every report) or a name the server
does not list each stop the job with one line naming the stage, the model and the fix (ModelCallError with
outcome "config", which `v2s run` prints and exits 2 on). `probe` is `v2s check`'s tiny structured call per stage
schema (jobs/check.py runs them)."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from annotator.gateway.base import Backend, ModelCallError, ModelResponse
from annotator.gateway.check_clip import CLIP_STAGES, check_media
from annotator.gateway.structured import InvalidAnswer, first_request, parse_json_object
from annotator.prompting import Prompt
from annotator.settings import ModelSettings

log = logging.getLogger(__name__)

STAGES = ("plot", "script", "distill")


def stage_models(settings: ModelSettings) -> list[tuple[str, str, str]]:
    """(stage, backend, model) of every stage."""
    return [(s, getattr(settings, f"{s}_backend"), getattr(settings, f"{s}_model")) for s in STAGES]


def check_catalog(settings: ModelSettings) -> None:
    """The checks that need no network: retired names and unpriced models (refused), and prices past an
    announced change (a warning: the run is billed at the new price, the reports would say the old one)."""
    table = settings.price_table()
    today = datetime.now(UTC).date().isoformat()
    for stage, _, model in stage_models(settings):
        variable = f"V2S_{stage.upper()}_MODEL"
        replacement = table.retired.get(model)
        if replacement is not None:
            raise ModelCallError(
                f"{stage}: model {model} was retired by its provider; set {variable}={replacement}",
                outcome="config",
            )
        if not settings.priced(model):
            raise ModelCallError(
                f"{stage}: model {model} has no price in the catalog ({table.version}); choose one of "
                f"{', '.join(sorted(table.models))} or price it: "
                f'V2S_PRICES=\'{{"{model}": {{"input_per_m": …, "output_per_m": …}}}}\'',
                outcome="config",
            )
        until = settings.price(model).valid_until
        if until is not None and until < today:
            log.warning(
                "%s: the catalog's price of %s was announced to change after %s; update the price table "
                "(V2S_PRICES_FILE) or V2S_PRICES",
                stage,
                model,
                until,
            )


# -- the tiny structured call per stage schema (`v2s check`) ----------------------------------------------------

CHECK_PROMPT_VERSION = "check.v1"
# The heading the simulator recognises a check by (annotator/simulator/check.py), as a model reads the prompt.
CHECK_HEADING = "## Configuration check"
CheckOutcome = Literal["ok", "failed", "unchecked"]


class StageCheck(BaseModel):
    """One stage schema's check: the request the stage would send, and what the server made of it."""

    stage: str
    backend: str
    model: str
    schema_name: str
    outcome: CheckOutcome
    served_model: str | None = None  # what the answer says answered (Gemini modelVersion, OpenAI `model`)
    max_output_tokens: (
        int  # what the stage asks for at most (V2S_MAX_OUTPUT_TOKENS within the catalog's limit)
    )
    server_limit: int | None = None  # vLLM's max_model_len from GET /models, where the server lists it
    thinking: str | int | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cost_usd: float = 0.0
    problem: str = ""  # failed: the one line naming stage, model and fix; unchecked: why


def stage_schemas() -> dict[str, tuple[type[BaseModel], ...]]:
    """The answer schemas each stage sends (annotator/stages): the plot stage has two, first and next segment."""
    from annotator.schemas import DistilledThinking, FirstSegmentPlot, NextSegmentPlot, Script

    return {"plot": (FirstSegmentPlot, NextSegmentPlot), "script": (Script,), "distill": (DistilledThinking,)}


def check_prompt(stage: str, schema: type[BaseModel], *, blank_media: bool = False) -> Prompt:
    media = (
        "The attached media is blank: it only checks that the service takes the stage's media as sent."
        if blank_media
        else "No video is attached."
    )
    text = (
        f"{CHECK_HEADING}\n\n"
        f"This request only checks that the service accepts v2s's {stage} request ({schema.__name__}): its "
        f"response schema, JSON mode, thinking and output settings. {media} Reply with the "
        "smallest JSON object the response schema allows, and nothing else."
    )
    return Prompt(stage=f"check-{stage}", version=CHECK_PROMPT_VERSION, text=text)


def same_model(asked: str, served: str | None) -> bool:
    """Whether the model that answered is the one asked for. Providers name a pinned version of the same model
    in the response (gemini-2.0-pro → gemini-2.0-pro-002, gpt-4o → gpt-4o-2024-08-06): that is not routing."""
    if not served:
        return True  # the response does not say: nothing to compare
    asked, served = asked.removeprefix("models/"), served.removeprefix("models/")
    return (
        served == asked
        or re.fullmatch(rf"{re.escape(asked)}-(\d{{3}}|\d{{4}}-\d{{2}}-\d{{2}})", served) is not None
    )


def probe(
    backend: Backend, settings: ModelSettings, stage: str, model: str, schema: type[BaseModel]
) -> StageCheck:
    """One call with the stage's real request shape (`first_request`: the schema, JSON mode, thinking, output
    budget, temperature) and a prompt asking for the smallest valid answer. Made on the backend itself, never
    through the gateway's response cache: a check answer is no stage's answer. Standard tier: Flex answers
    in minutes, and a check must be quick. One attempt: a 429 or an outage leaves the stage unchecked (its
    own calls retry), only a refusal of the request itself fails it."""
    # OpenAI-compatible servers differ in what media they take (Ollama: no video; vLLM: N images per prompt):
    # their check shows a blank clip the way the stage's requests show theirs (check_clip.py)
    media = check_media(settings) if backend.name == "openai" and stage in CLIP_STAGES else None
    prompt = check_prompt(stage, schema, blank_media=media is not None)
    request = first_request(settings, stage, model, prompt, schema, media)
    variable = f"V2S_{stage.upper()}_MODEL"
    found = StageCheck(
        stage=stage,
        backend=backend.name,
        model=model,
        schema_name=schema.__name__,
        outcome="ok",
        max_output_tokens=request.max_output_tokens,
        server_limit=_server_limit(backend, model),
        thinking=request.thinking,
    )
    try:
        response = backend.generate(request)
    except ModelCallError as exc:
        if exc.outcome == "auth":
            raise
        if exc.billed is not None:
            found = _billed(found, exc.billed, settings)
        if exc.retryable or exc.outcome in ("quota", "blocked"):
            return found.model_copy(update={"outcome": "unchecked", "problem": f"not checked: {exc}"})
        if exc.outcome == "config":  # the backend already named the setting to change (media_refusals.py)
            return found.model_copy(
                update={
                    "outcome": "failed",
                    "problem": f"{stage}: {model} refused v2s's {schema.__name__} request: {exc}",
                }
            )
        return found.model_copy(
            update={
                "outcome": "failed",
                "problem": f"{stage}: {model} refused v2s's {schema.__name__} request ({exc}); "
                f"{_fix_for(str(exc), stage, variable, model)}",
            }
        )
    found = _billed(found, response, settings)
    served = response.served_model
    if not same_model(model, served):
        priced = settings.priced(served.removeprefix("models/")) if served else False
        fix = f"set {variable}={served}" + ("" if priced else " and price it (V2S_PRICES)")
        return found.model_copy(
            update={
                "outcome": "failed",
                "problem": f"{stage}: model {model} is served by {served} (the answer's model version), which "
                f"bills and answers as {served}; {fix}",
            }
        )
    if response.truncated:
        return found.model_copy(
            update={"outcome": "unchecked", "problem": "the check's answer was cut off at the output limit"}
        )
    try:
        parse_json_object(response.text)
    except InvalidAnswer as exc:
        return found.model_copy(
            update={
                "outcome": "failed",
                "problem": f"{stage}: {model} did not answer JSON in JSON mode ({exc}); set {variable} to a "
                "model with structured output",
            }
        )
    return found


def _billed(found: StageCheck, response: ModelResponse, settings: ModelSettings) -> StageCheck:
    """The check's usage, at the price of the model that answered when the catalog knows it (a routed name is
    billed as its target)."""
    served = (response.served_model or "").removeprefix("models/")
    price = settings.price(served if served and settings.priced(served) else found.model)
    return found.model_copy(
        update={
            "served_model": response.served_model,
            "input_tokens": found.input_tokens + response.input_tokens,
            "output_tokens": found.output_tokens + response.output_tokens,
            "thinking_tokens": found.thinking_tokens + response.thinking_tokens,
            "cost_usd": found.cost_usd + price.cost_of(response),
        }
    )


def _server_limit(backend: Backend, model: str) -> int | None:
    """vLLM's max_model_len for the model, where GET /models lists it (the gateway fits max_tokens in it)."""
    inner = getattr(backend, "inner", backend)
    served = getattr(inner, "served_models", None)
    if served is None:
        return None
    try:
        return served().get(model)
    except ModelCallError:
        return None


def _fix_for(message: str, stage: str, variable: str, model: str) -> str:
    """What to change, from what the server refused."""
    lowered = message.lower()
    if "use 'max_completion_tokens'" in lowered or "only the default (1) value is supported" in lowered:
        # OpenAI's answer for a reasoning model sent max_tokens or a temperature: the catalog does not mark it
        return (
            f"{model} is an OpenAI reasoning model (max_completion_tokens, default temperature only): mark it "
            f'in the price table, V2S_PRICES=\'{{"{model}": {{"openai_reasoning": true, …}}}}\''
        )
    if "max_tokens" in lowered or "maxoutputtokens" in lowered or "context length" in lowered:
        return "lower V2S_MAX_OUTPUT_TOKENS or the model's max_output_tokens in the price table (V2S_PRICES)"
    if "thinking" in lowered:
        return "fix the model's thinking entry in the price table (V2S_PRICES_FILE or V2S_PRICES)"
    if "schema" in lowered:
        return f"set {variable} to a model that takes the {stage} stage's response schema"
    return f"set {variable} to a model the server serves"
