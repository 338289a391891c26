"""The model gateway: one place that knows how to reach each backend and get a validated answer back."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from annotator.gateway.base import Backend, Media, ModelCallError, ModelRequest, ModelResponse, RetryableError
from annotator.gateway.structured import StructuredResult, ask_structured
from annotator.prompting import Prompt
from annotator.settings import ModelSettings


class Gateway:
    """Builds backends lazily (a worker that only distils never needs Gemini credentials)."""

    def __init__(
        self, settings: ModelSettings | None = None, backends: dict[str, Backend] | None = None
    ) -> None:
        self.settings = settings or ModelSettings()
        self._backends: dict[str, Backend] = dict(backends or {})
        self._lock = threading.Lock()

    def backend(self, name: str) -> Backend:
        with self._lock:
            if name not in self._backends:
                if name == "gemini":
                    from annotator.gateway.gemini import GeminiBackend

                    self._backends[name] = GeminiBackend(self.settings)
                elif name == "openai":
                    from annotator.gateway.openai_compat import OpenAICompatBackend

                    self._backends[name] = OpenAICompatBackend(self.settings)
                else:
                    raise ModelCallError(f"unknown backend {name!r}; use gemini or openai")
            return self._backends[name]

    def structured(
        self,
        *,
        stage: str,
        backend: str,
        model: str,
        prompt: Prompt,
        schema: type[BaseModel],
        media: Media | None = None,
    ) -> StructuredResult:
        try:
            chosen = self.backend(backend)
        except ModelCallError as exc:
            from annotator.gateway.structured import Usage

            return StructuredResult(
                outcome=exc.outcome, error=str(exc), model=model, prompt_version=prompt.version, usage=Usage()
            )
        return ask_structured(
            chosen, self.settings, stage=stage, model=model, prompt=prompt, schema=schema, media=media
        )


__all__ = [
    "Backend",
    "Gateway",
    "Media",
    "ModelCallError",
    "ModelRequest",
    "ModelResponse",
    "RetryableError",
    "StructuredResult",
]
