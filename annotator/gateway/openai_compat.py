"""Any OpenAI-compatible chat server through the openai SDK: DeepSeek, vLLM, SGLang, Ollama."""

from __future__ import annotations

import base64
import re

import openai
from openai import OpenAI

from annotator.gateway.base import (
    BlockedError,
    Media,
    ModelCallError,
    ModelRequest,
    ModelResponse,
    RetryableError,
)
from annotator.gateway.clip_media import sample_frames, window_video
from annotator.gateway.errors import configured_secrets, redact, retry_after_seconds
from annotator.gateway.media_refusals import frame_cap, media_refusal
from annotator.settings import ModelSettings

# vLLM's 400 when prompt + max_tokens exceed --max-model-len (it names both numbers)
_TOO_LONG = re.compile(r"maximum context length is (\d+) tokens and your request has (\d+) input tokens")
# what a video or frames may add to the prompt on a vLLM server, which v2s cannot count before sending
_MEDIA_TOKEN_ALLOWANCE = 8192

# the output budget's parameter: `max_tokens` (DeepSeek, vLLM, SGLang, Ollama), or `max_completion_tokens` for
# the models the catalog marks `openai_reasoning` (OpenAI refuses `max_tokens` for them)
BUDGET, BUDGET_REASONING = "max_tokens", "max_completion_tokens"

KEY_HINT = (
    "set DEEPSEEK_API_KEY or OPENAI_API_KEY (or V2S_OPENAI_API_KEY), and V2S_OPENAI_BASE_URL for the server"
)


class OpenAICompatBackend:
    name = "openai"

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        if not key:
            raise ModelCallError(f"no API key for the OpenAI-compatible backend: {KEY_HINT}", outcome="auth")
        self._secrets = configured_secrets(settings)
        # Our retry layer owns retries (it honours Retry-After and counts attempts per stage).
        self.client = OpenAI(
            api_key=key, base_url=settings.openai_base_url, max_retries=0, timeout=settings.request_timeout_s
        )
        self._models: dict[str, int | None] | None = None

    def check_access(self, model: str) -> None:
        """A free authenticated call (GET /models): ModelCallError(outcome="auth") when the key is refused,
        outcome "config" when the server does not list the model (DeepSeek answers a retired name 400)."""
        if model not in self.served_models():
            raise ModelCallError(f"{self.client.base_url} does not list model {model}", outcome="config")

    def served_models(self) -> dict[str, int | None]:
        """The server's models (GET /models, asked once) with the max_model_len vLLM lists, else None."""
        if self._models is None:
            try:
                listing = self.client.models.list()
            except openai.APIError as exc:
                raise self._key_refused(exc) or ModelCallError(
                    redact(f"{self.client.base_url} models.list failed: {type(exc).__name__}", self._secrets)
                ) from None
            self._models = {m.id: _int((m.model_extra or {}).get("max_model_len")) for m in listing.data}
        return self._models

    def chat_body(self, request: ModelRequest) -> dict:
        """The chat completion request's body (a call's arguments, or a batch line's `body`)."""
        messages: list[dict] = [
            {"role": "user" if role == "user" else "assistant", "content": text}
            for role, text in request.history
        ]
        content: list[dict] | str = request.prompt
        if request.media is not None:  # DeepSeek is text-only: its stages (distill) send no media
            content = [*self._media_parts(request.media), {"type": "text", "text": request.prompt}]
        messages.append({"role": "user", "content": content})
        body: dict = {"model": request.model, "messages": messages}
        if self.settings.price(request.model).openai_reasoning:
            # OpenAI's reasoning models answer 400 to `max_tokens` and to any temperature but their default
            body[BUDGET_REASONING] = self.max_tokens(request)
        else:  # what DeepSeek, vLLM, SGLang and Ollama take (and any model the catalog does not mark)
            body.update({BUDGET: self.max_tokens(request), "temperature": request.temperature})
        if request.response_schema:
            body["response_format"] = {"type": "json_object"}
        return body

    def max_tokens(self, request: ModelRequest) -> int:
        """The request's output budget (V2S_MAX_OUTPUT_TOKENS lowered to the catalog's maximum for the model,
        e.g. DeepSeek's documented range), and on a vLLM server that lists `max_model_len` in GET /models, no
        more than what the prompt leaves of it: vLLM answers 400 when prompt + max_tokens exceed it."""
        try:
            window = self.served_models().get(request.model)
        except ModelCallError:  # the call itself will say what is wrong with the server
            window = None
        if window is None:
            return request.max_output_tokens
        chars = len(request.prompt) + sum(len(text) for _, text in request.history)
        prompt = chars // 3 + 1 + (_MEDIA_TOKEN_ALLOWANCE if request.media is not None else 0)
        return max(1, min(request.max_output_tokens, window - prompt))

    def generate(self, request: ModelRequest) -> ModelResponse:
        kwargs = {}
        if request.tier == "flex":  # OpenAI's service_tier; servers without it (DeepSeek) ignore or refuse it
            kwargs.update(service_tier="flex", timeout=self.settings.flex_request_timeout_s)
        body = self.chat_body(request)
        try:
            try:
                completion = self.client.chat.completions.create(**body, **kwargs)
            except openai.BadRequestError as exc:
                key = BUDGET_REASONING if BUDGET_REASONING in body else BUDGET
                fitted = _fitted(exc, body[key])
                if fitted is None:
                    raise
                # the prompt was longer than estimated: ask again with what vLLM says is left
                completion = self.client.chat.completions.create(**{**body, key: fitted}, **kwargs)
        except openai.BadRequestError as exc:  # a clip the server cannot take is a settings problem
            said = exc.body.get("message") if isinstance(exc.body, dict) else None
            said = redact(str(said or exc.message), self._secrets)
            refused = media_refusal(said, body, self.settings, str(self.client.base_url))
            raise refused or self.call_error(exc, request.model) from None
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise self.call_error(exc, request.model) from None
        return self.to_response(request, completion)

    def to_response(self, request: ModelRequest, completion) -> ModelResponse:
        """A chat completion as our answer; empty, filtered and choice-less answers raise."""
        usage = completion.usage
        choice = completion.choices[0] if completion.choices else None
        billed = ModelResponse(  # what the server bills, whatever became of the answer
            text="",
            model=request.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason if choice else None,
            tier="flex" if completion.service_tier == "flex" else "standard",  # a batch's reader sets batch
            cached_tokens=_cached_tokens(usage),
            thinking_tokens=_reasoning_tokens(usage),
            served_model=getattr(completion, "model", None) or None,
        )
        if choice is None or choice.message is None:
            empty = RetryableError(
                f"{request.model} returned an empty response (no choices)", outcome="empty"
            )
            raise empty.with_billing(billed)
        if choice.finish_reason == "content_filter":
            raise BlockedError(f"{request.model} filtered the answer (content_filter)").with_billing(billed)
        if not choice.message.content and choice.finish_reason != "length":
            raise RetryableError(
                f"{request.model} returned an empty answer (finish reason {choice.finish_reason})",
                outcome="empty",
            ).with_billing(billed)
        reasoning = getattr(choice.message, "reasoning_content", None) or (
            choice.message.model_extra or {}
        ).get("reasoning_content")
        return billed.model_copy(
            update={"text": choice.message.content or "", "reasoning_content": reasoning}
        )

    def _media_parts(self, media: Media) -> list[dict]:
        """The clip as one video_url data URL (vLLM/SGLang), or as sampled JPEG frames any VLM can read."""
        if self.settings.openai_video_mode == "video_url":
            data = base64.b64encode(window_video(media)).decode()
            return [{"type": "video_url", "video_url": {"url": f"data:{media.mime_type};base64,{data}"}}]
        frames = sample_frames(media, self.settings.openai_frame_fps, frame_cap(self.settings))
        return [{"type": "text", "text": frames.describe()}] + [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(f).decode()},
            }
            for f in frames.images
        ]

    def _key_refused(self, exc: openai.APIError) -> ModelCallError | None:
        """The server's word that the key will not do: one error whichever call heard it (outcome "auth" is what
        stops a job before it spends anything)."""
        if isinstance(exc, openai.AuthenticationError):
            return ModelCallError(f"{self.client.base_url} rejected the API key: {KEY_HINT}", outcome="auth")
        if isinstance(exc, openai.PermissionDeniedError):
            return ModelCallError(f"{self.client.base_url} denied access: {KEY_HINT}", outcome="auth")
        return None

    def call_error(
        self, exc: openai.APIStatusError | openai.APIConnectionError, model: str
    ) -> ModelCallError:
        """A failed chat call as our error: throttling, server faults and lost connections are worth a retry
        (after the server's Retry-After when it sent one); any other refusal is final."""
        refused = self._key_refused(exc)
        if refused is not None:
            return refused
        if isinstance(exc, openai.RateLimitError | openai.InternalServerError):
            outcome = "rate_limited" if isinstance(exc, openai.RateLimitError) else "server_error"
            retry_after = retry_after_seconds(exc.response.headers)
            return RetryableError(self._message(exc), retry_after_s=retry_after, outcome=outcome)
        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is one
            return RetryableError(f"{model} timed out", outcome="timeout")
        if isinstance(exc, openai.APIConnectionError):
            return RetryableError(f"cannot reach {self.client.base_url} ({type(exc).__name__})")
        return ModelCallError(self._message(exc))

    def _message(self, exc: openai.APIStatusError) -> str:
        return redact(f"{self.client.base_url} answered HTTP {exc.status_code}: {exc.message}", self._secrets)


def _fitted(exc: openai.BadRequestError, max_tokens: int) -> int | None:
    """A smaller max_tokens that fits, from vLLM's "maximum context length" 400, or None."""
    match = _TOO_LONG.search(str(exc.message))
    if match is None:
        return None
    left = int(match.group(1)) - int(match.group(2))
    return left if 0 < left < max_tokens else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and value > 0 else None


def _reasoning_tokens(usage) -> int:
    """Of completion_tokens, the reasoning (completion_tokens_details.reasoning_tokens; 0 when not reported)."""
    details = getattr(usage, "completion_tokens_details", None) if usage is not None else None
    return int(getattr(details, "reasoning_tokens", None) or 0)


def _cached_tokens(usage) -> int:
    """Prompt tokens served from the provider's prompt cache: OpenAI's prompt_tokens_details.cached_tokens,
    DeepSeek's prompt_cache_hit_tokens."""
    if usage is None:
        return 0
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if cached is None:
        cached = (usage.model_extra or {}).get("prompt_cache_hit_tokens")
    return int(cached or 0)
