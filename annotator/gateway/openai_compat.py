"""Any OpenAI-compatible chat server through the openai SDK: DeepSeek, vLLM, SGLang, Ollama."""

from __future__ import annotations

import base64

import openai
from openai import OpenAI

from annotator.gateway.base import BlockedError, ModelCallError, ModelRequest, ModelResponse, RetryableError
from annotator.gateway.errors import redact, retry_after_seconds
from annotator.settings import ModelSettings

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
        self._secrets = [key]
        # Our retry layer owns retries (it honours Retry-After and counts attempts per stage).
        self.client = OpenAI(
            api_key=key, base_url=settings.openai_base_url, max_retries=0, timeout=settings.request_timeout_s
        )

    def generate(self, request: ModelRequest) -> ModelResponse:
        messages: list[dict] = [
            {"role": "user" if role == "user" else "assistant", "content": text}
            for role, text in request.history
        ]
        content: list[dict] | str = request.prompt
        if request.media is not None:
            # Self-hosted VLMs (vLLM/SGLang) accept a video as a data URL; DeepSeek is text-only and gets none.
            data = base64.b64encode(request.media.path.read_bytes()).decode()
            content = [
                {"type": "video_url", "video_url": {"url": f"data:{request.media.mime_type};base64,{data}"}},
                {"type": "text", "text": request.prompt},
            ]
        messages.append({"role": "user", "content": content})
        kwargs = {"response_format": {"type": "json_object"}} if request.response_schema else {}
        try:
            completion = self.client.chat.completions.create(
                model=request.model,
                messages=messages,
                max_tokens=request.max_output_tokens,
                temperature=request.temperature,
                **kwargs,
            )
        except openai.AuthenticationError:
            raise ModelCallError(
                f"{self.client.base_url} rejected the API key: {KEY_HINT}", outcome="auth"
            ) from None
        except openai.PermissionDeniedError:
            raise ModelCallError(
                f"{self.client.base_url} denied access: {KEY_HINT}", outcome="auth"
            ) from None
        except openai.RateLimitError as exc:
            raise RetryableError(
                self._message(exc), retry_after_s=retry_after_seconds(exc.response.headers)
            ) from None
        except openai.InternalServerError as exc:
            raise RetryableError(
                self._message(exc), retry_after_s=retry_after_seconds(exc.response.headers)
            ) from None
        except openai.APITimeoutError:
            raise RetryableError(f"{request.model} timed out", outcome="timeout") from None
        except openai.APIConnectionError as exc:
            raise RetryableError(f"cannot reach {self.client.base_url} ({type(exc).__name__})") from None
        except openai.APIStatusError as exc:
            raise ModelCallError(self._message(exc)) from None

        choice = completion.choices[0] if completion.choices else None
        if choice is None or choice.message is None:
            raise RetryableError(f"{request.model} returned no choices", outcome="invalid_output")
        if choice.finish_reason == "content_filter":
            raise BlockedError(f"{request.model} filtered the answer (content_filter)")
        usage = completion.usage
        return ModelResponse(
            text=choice.message.content or "",
            model=request.model,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason,
            reasoning_content=getattr(choice.message, "reasoning_content", None)
            or (choice.message.model_extra or {}).get("reasoning_content"),
        )

    def _message(self, exc: openai.APIStatusError) -> str:
        return redact(f"{self.client.base_url} answered HTTP {exc.status_code}: {exc.message}", self._secrets)
