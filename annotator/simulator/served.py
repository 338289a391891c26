"""Which model names the simulated services serve, which they stopped serving, and their output limits.

Kept apart from the engine's catalog (annotator/data/prices.v1.json) on purpose: the simulator stands for the
providers, so a mistake in the engine's catalog must show up as a refusal here, not be mirrored. Each entry
is cited in docs/simulator.md.
"""

from __future__ import annotations

from typing import Literal

from annotator.simulator.errors import SimError, invalid

# Gemini API (ai.google.dev/gemini-api/docs/deprecations, read 2026-12-07): name → maxOutputTokens limit.
GEMINI_MODELS: dict[str, int] = {
    "gemini-3.8-flash": 65536,
    "gemini-4-hydrogen": 65536,
    "gemini-3.1-flash-lite": 65536,
    "gemini-2.5-flash-lite": 65536,
}
# Names Gemini answers with another model: auto-updated aliases ("-latest", which Google repoints at each new
# release) and names a successor serves. The request succeeds; only the answer's modelVersion, and the bill,
# say which model it was. Mirrors Vertex AI's "Model versions and lifecycle" (auto-updated aliases) and the
# modelVersion that names the serving model (spring-projects/spring-ai#4152); cited in docs/simulator.md.
GEMINI_ROUTED: dict[str, str] = {
    "gemini-flash-latest": "gemini-3.8-flash",
    "gemini-flash-lite-latest": "gemini-3.1-flash-lite",
}
# Thinking levels each model accepts (Gemini 3.x; 2.5 models take a budget instead). gemini-3.8-flash refuses
# MINIMAL ("Explicitly setting thinking_level to MINIMAL will return an API validation error", Vertex AI's
# Gemini 3.8 Flash page); Gemini 4 adds XHIGH.
GEMINI_THINKING_LEVELS: dict[str, frozenset[str]] = {
    "gemini-3.8-flash": frozenset({"low", "medium", "high"}),
    "gemini-4-hydrogen": frozenset({"low", "medium", "high", "xhigh"}),
    "gemini-3.1-flash-lite": frozenset({"minimal", "low", "medium", "high"}),
    "gemini-2.5-flash-lite": frozenset(),
}
# Shut down: a generateContent or models.get on these is a 404 NOT_FOUND.
GEMINI_RETIRED = frozenset(
    {
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-3-pro-preview",
        "gemini-2.0-flash",
        "gemini-2.0-flash-lite",
    }
)

# DeepSeek (api-docs.deepseek.com/quick_start/pricing, read 2026-12-07): max_tokens range [1, 384K]. The legacy
# name deepseek-v4-flash is still accepted (served by DeepSeek-V4.1-Flash); deepseek-chat and
# deepseek-reasoner stopped on 2026-07-24 and answer 400 "Model Not Exist".
DEEPSEEK_MAX_TOKENS = 384000
OPENAI_MODELS: dict[str, int | None] = {
    "deepseek-flash": DEEPSEEK_MAX_TOKENS,
    "deepseek-v4-pro": DEEPSEEK_MAX_TOKENS,
    "deepseek-v4-flash": DEEPSEEK_MAX_TOKENS,
    "v2s-sim": None,  # the vLLM-style model: bounded by max_model_len instead (prompt + max_tokens)
    "gpt-5.4-mini": None,  # OpenAI: a reasoning model (see OPENAI_REASONING)
    "qwen2.5vl:7b": None,  # Ollama: text and images only (see check_openai_part)
}
VLLM_MODEL = "v2s-sim"
DEFAULT_MAX_MODEL_LEN = 32768  # vLLM's --max-model-len of the simulated server, listed in GET /v1/models
# vLLM's --limit-mm-per-prompt of the simulated server (`server.limit_mm_per_prompt`): items per modality in one
# prompt. 999 is vLLM V1's default ("Defaults to 1 (V0) or 999 (V1) for each modality", MultiModalConfig,
# docs.vllm.ai v0.11); deployments often set fewer, e.g. '{"image": 4, "video": 1}'.
DEFAULT_LIMIT_MM_PER_PROMPT = {"image": 999, "video": 999}

# Which server each OpenAI-compatible model stands for: the refusals differ by server (DeepSeek's max_tokens
# range, vLLM's max_model_len, OpenAI's reasoning-model parameters).
Flavour = Literal["deepseek", "vllm", "openai", "ollama"]
OPENAI_FLAVOURS: dict[str, Flavour] = {
    "deepseek-flash": "deepseek",
    "deepseek-v4-pro": "deepseek",
    "deepseek-v4-flash": "deepseek",
    VLLM_MODEL: "vllm",
    "gpt-5.4-mini": "openai",
    "qwen2.5vl:7b": "ollama",
}
# OpenAI's reasoning models (o-series, gpt-5 family) take `max_completion_tokens` only (`max_tokens` "is not
# compatible with o-series models", platform.openai.com/docs/api-reference/chat/create) and only the default
# temperature, 1. The 400 bodies as users quote them: griptape-ai/ComfyUI-Griptape#312 (gpt-5),
# koosoli/ESPHomeDesigner#379 (gpt-5.4, -mini); holoviz/lumen#1087 (0.2), johny-b/llmcomp#69 (gpt-5.4).
OPENAI_REASONING = frozenset({"gpt-5.4-mini"})


def served_gemini_model(model: str) -> str:
    """The model that answers a request for `model`: itself, or what an alias routes to."""
    return GEMINI_ROUTED.get(model, model)


def check_gemini_model(model: str, version: str, method: str) -> None:
    """404 NOT_FOUND for a name Gemini does not serve (retired or unknown), as the real API answers."""
    if served_gemini_model(model) not in GEMINI_MODELS:
        raise SimError(
            404,
            f"models/{model} is not found for API version {version}, or is not supported for {method}. "
            "Call ListModels to see the list of available models and their supported methods.",
        )


def check_gemini_max_output(model: str, max_output: int | None) -> None:
    limit = GEMINI_MODELS.get(served_gemini_model(model))
    if max_output is not None and limit is not None and not 1 <= max_output <= limit:
        raise invalid(
            f"Unable to submit request because it has a maxOutputTokens value of {max_output} but the "
            f"supported range is from 1 (inclusive) to {limit + 1} (exclusive). Update the value and try again."
        )


def check_gemini_thinking(model: str, level: str | None) -> None:
    """A thinking level the model does not take is a 400 INVALID_ARGUMENT."""
    allowed = GEMINI_THINKING_LEVELS.get(served_gemini_model(model))
    if level is not None and allowed is not None and level.lower() not in allowed:
        accepted = ", ".join(sorted(allowed)) or "none (set thinkingBudget)"
        raise invalid(
            f"thinking_level {level.upper()} is not supported by {model}; supported values: {accepted}"
        )


def check_openai_model(model: str) -> None:
    """DeepSeek's answer to a model name it does not serve (retired names included)."""
    if model not in OPENAI_MODELS:
        raise SimError(400, "Model Not Exist", status="invalid_request_error")


def check_max_tokens(model: str, max_tokens: int | None, prompt_tokens: int, max_model_len: int) -> None:
    """DeepSeek refuses max_tokens outside its range; vLLM refuses prompt + max_tokens over max_model_len."""
    if max_tokens is None:
        return
    limit = OPENAI_MODELS.get(model)
    if limit is not None and not 1 <= max_tokens <= limit:
        raise SimError(
            400,
            f"Invalid max_tokens value, the valid range of max_tokens is [1, {limit}]",
            status="invalid_request_error",
        )
    if model == VLLM_MODEL and prompt_tokens + max_tokens > max_model_len:
        raise SimError(
            400,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {max_model_len} tokens and your request has {prompt_tokens} input tokens "
            f"({max_tokens} > {max_model_len} - {prompt_tokens}).",
            status="BadRequestError",
        )


def check_openai_params(model: str, body: dict) -> None:
    """OpenAI's reasoning models refuse `max_tokens` and any temperature but the default (1)."""
    if model not in OPENAI_REASONING:
        return
    if body.get("max_tokens") is not None:
        raise SimError(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            status="unsupported_parameter",
            param="max_tokens",
        )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise SimError(
            400,
            f"Unsupported value: 'temperature' does not support {temperature} with this model. "
            "Only the default (1) value is supported.",
            status="unsupported_value",
            param="temperature",
        )


def check_openai_part(model: str, part_type: object) -> None:
    """Ollama's OpenAI-compatible endpoint takes `text` and `image_url` content parts only: any other part (a
    `video_url`) is a 400 "invalid message format" (ollama/ollama openai/openai.go, FromChatRequest)."""
    if OPENAI_FLAVOURS.get(model) == "ollama" and part_type not in ("text", "image_url"):
        raise invalid("invalid message format")


def check_mm_limits(model: str, counts: dict[str, int], limits: dict[str, int]) -> None:
    """vLLM refuses more items of a modality in one prompt than --limit-mm-per-prompt allows (vllm-project/vllm
    vllm/multimodal/processing/context.py, validate_num_items; the 400 as in vllm-project/vllm#13513)."""
    if OPENAI_FLAVOURS.get(model) != "vllm":
        return
    for modality, count in counts.items():
        limit = limits.get(modality, DEFAULT_LIMIT_MM_PER_PROMPT[modality])
        if count > limit:
            raise SimError(
                400,
                f"At most {limit} {modality}(s) may be provided in one prompt. "
                "Set `--limit-mm-per-prompt` to increase this limit.",
                status="BadRequestError",
            )
