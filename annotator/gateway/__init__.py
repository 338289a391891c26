"""The model gateway: one place that knows how to reach each backend and get a validated answer back."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel

from annotator.gateway.base import Backend, Media, ModelCallError, ModelRequest, ModelResponse, RetryableError
from annotator.gateway.batch import BatchBackend
from annotator.gateway.cache import CachedAnswer, ResponseCache, cache_key
from annotator.gateway.limiter import LocalRateLimiter, RateLimiter
from annotator.gateway.structured import StageAsk, StructuredResult, Usage, ask_structured
from annotator.pricing import MediaRates
from annotator.prompting import Prompt
from annotator.settings import ModelSettings

_ANSWER_ALLOWANCE_TOKENS = 1000
_MEDIA_RATES = MediaRates()  # the documented video token rates (annotator/pricing.py), for the estimate only


def estimate_tokens(request: ModelRequest) -> int:
    """A rough count to reserve before the call; `settle` corrects it with the real usage."""
    chars = len(request.prompt) + sum(len(text) for _, text in request.history)
    tokens = chars // 4 + _ANSWER_ALLOWANCE_TOKENS
    media = request.media
    if media is not None and media.start_offset_s is not None and media.end_offset_s is not None:
        seconds = media.end_offset_s - media.start_offset_s
        tokens += _MEDIA_RATES.video_tokens(
            seconds, has_audio=True, fps=media.fps, resolution=media.resolution
        )
    return tokens


class LimitedBackend:
    """A backend whose every HTTP attempt (first ask, retries, repair turns) first waits its turn in the limiter.

    `guard` (optional) runs right before each attempt is sent, after the wait: the last moment a process that
    must not pay for calls any more (a Ray worker whose node is gone) can stop."""

    def __init__(
        self,
        inner: Backend,
        limiter: RateLimiter,
        *,
        default_cooldown_s: float = 1.0,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.limiter = limiter
        self.name = inner.name
        self.default_cooldown_s = default_cooldown_s  # a 429 without Retry-After
        self.guard = guard

    def generate(self, request: ModelRequest) -> ModelResponse:
        reservation = self.limiter.acquire(request.model, estimate_tokens(request))
        used = 0
        try:
            if self.guard is not None:
                self.guard()
            response = self.inner.generate(request)
            used = response.input_tokens + response.output_tokens
            return response
        except RetryableError as exc:
            if exc.outcome == "rate_limited":
                wait = exc.retry_after_s if exc.retry_after_s is not None else self.default_cooldown_s
                self.limiter.penalise(request.model, wait)
            raise
        finally:
            self.limiter.settle(reservation, used)

    def check_access(self, model: str) -> None:
        self.inner.check_access(model)


class Gateway:
    """Builds backends lazily (a worker that only distils never needs Gemini credentials).

    `limiter` defaults to this process's own limits; Ray workers pass the cluster-wide one. `cache` (optional)
    returns stored answers instead of asking again. `guard` (optional) runs before every HTTP attempt (see
    LimitedBackend)."""

    def __init__(
        self,
        settings: ModelSettings | None = None,
        backends: dict[str, Backend] | None = None,
        *,
        limiter: RateLimiter | None = None,
        cache: ResponseCache | None = None,
        guard: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings or ModelSettings()
        self.guard = guard
        self.limiter: RateLimiter = limiter or LocalRateLimiter(
            self.settings.rate_limits, window_s=self.settings.rate_limit_window_s
        )
        self.cache = cache if self.settings.response_cache else None
        self._backends: dict[str, Backend] = {name: self._limited(b) for name, b in (backends or {}).items()}
        self._lock = threading.Lock()
        self._batch_apis: dict[str, BatchBackend | None] = {}

    def _limited(self, backend: Backend) -> LimitedBackend:
        return LimitedBackend(
            backend, self.limiter, default_cooldown_s=self.settings.retry_initial_wait_s, guard=self.guard
        )

    def backend(self, name: str) -> Backend:
        with self._lock:
            if name not in self._backends:
                if name == "gemini":
                    from annotator.gateway.gemini import GeminiBackend

                    self._backends[name] = self._limited(GeminiBackend(self.settings))
                elif name == "openai":
                    from annotator.gateway.openai_compat import OpenAICompatBackend

                    self._backends[name] = self._limited(OpenAICompatBackend(self.settings))
                else:
                    raise ModelCallError(f"unknown backend {name!r}; use gemini or openai")
            return self._backends[name]

    def release_uploads(self, media_sha256: set[str]) -> int:
        """Delete the Files API uploads of these videos (their stages are final): a project holds 20 GB of
        files, which a long job would otherwise fill before the 48 h expiry frees them. Returns how many were
        deleted; nothing to do when no video stage uses Gemini's Files API."""
        stages = {self.settings.plot_backend, self.settings.script_backend}
        if "gemini" not in stages or self.settings.vertex_project:
            return 0
        inner = getattr(self.backend("gemini"), "inner", None)
        return sum(inner.delete_upload(sha) for sha in sorted(media_sha256)) if inner is not None else 0

    def cache_video(self, backend: str, model: str, media: Media):
        """An explicit context cache of `media` for `model` (annotator/gateway/context_cache.py)."""
        from annotator.gateway.context_cache import create_video_cache

        inner = getattr(self.backend(backend), "inner", None)
        if not hasattr(inner, "create_cache"):
            raise ModelCallError(f"the {backend} backend has no context caches")
        return create_video_cache(inner, self.settings, model, media)

    def drop_cache(self, backend: str, name: str) -> None:
        self.backend(backend).inner.delete_cache(name)

    # -- the response cache: a validated answer is never paid for twice ---------------------------------------
    def _key(self, ask: StageAsk) -> str:
        return cache_key(
            stage=ask.stage,
            backend=ask.backend,
            model=ask.model,
            prompt_version=ask.prompt.version,
            prompt_text=ask.prompt.text,
            media=ask.media,
        )

    def cached(self, ask: StageAsk) -> StructuredResult | None:
        """The stored answer to this exact request, with its own usage (no call is made now: the stage that
        finally uses it accounts for it once; its first asker may have died before recording it)."""
        hit = self.cache.get(self._key(ask)) if self.cache is not None else None
        if hit is None:
            return None
        return StructuredResult[ask.schema_type](
            value=ask.schema_type.model_validate(hit.answer),
            model=ask.model,
            prompt_version=ask.prompt.version,
            usage=Usage(
                calls=0, input_tokens=hit.input_tokens, output_tokens=hit.output_tokens, cost_usd=hit.cost_usd
            ),
            reasoning_content=hit.reasoning_content,
            cached=True,
        )

    def remember(self, ask: StageAsk, result: StructuredResult) -> None:
        if self.cache is None or result.value is None or result.cached:
            return
        self.cache.put(
            self._key(ask),
            CachedAnswer(
                answer=result.value.model_dump(mode="json"),
                reasoning_content=result.reasoning_content,
                calls=result.usage.calls,
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                cost_usd=result.usage.cost_usd,
            ),
        )

    # -- batches ------------------------------------------------------------------------------------------------
    def batches(self, backend: str) -> BatchBackend | None:
        """The backend's batch API, or None when it has none (its batch-tier stages make standard calls)."""
        with self._lock:
            if backend in self._batch_apis:
                return self._batch_apis[backend]
        inner = getattr(self.backend(backend), "inner", None)
        api: BatchBackend | None = None
        if backend == "gemini" and inner is not None:
            from annotator.gateway.gemini_batch import GeminiBatches

            api = GeminiBatches(inner)
        elif backend == "openai" and inner is not None:
            from annotator.gateway.openai_batch import OpenAIBatches

            api = OpenAIBatches(inner)
        if api is not None and not api.supports_batches():
            api = None
        with self._lock:
            self._batch_apis[backend] = api
        return api

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
        ask = StageAsk(
            stage=stage, backend=backend, model=model, prompt=prompt, schema_type=schema, media=media
        )
        return self.ask(ask)

    def ask(self, ask: StageAsk) -> StructuredResult:
        """A validated answer to one request: the stored one, else a synchronous call with its repairs."""
        try:
            chosen = self.backend(ask.backend)
        except ModelCallError as exc:
            return StructuredResult(
                outcome=exc.outcome,
                error=str(exc),
                model=ask.model,
                prompt_version=ask.prompt.version,
                usage=Usage(),
            )
        hit = self.cached(ask)
        if hit is not None:
            return hit
        result = ask_structured(
            chosen,
            self.settings,
            stage=ask.stage,
            model=ask.model,
            prompt=ask.prompt,
            schema=ask.schema_type,
            media=ask.media,
            contract=ask.contract,
        )
        self.remember(ask, result)
        return result


__all__ = [
    "Backend",
    "Gateway",
    "LimitedBackend",
    "Media",
    "ModelCallError",
    "ModelRequest",
    "ModelResponse",
    "RetryableError",
    "StageAsk",
    "StructuredResult",
]
