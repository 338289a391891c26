"""Gemini through google-genai: API key or Vertex AI, base_url override, inline media or the Files API."""

from __future__ import annotations

import logging
import re
import threading
import time

try:  # google-genai moved from httpx to httpx2; accept either
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]
from google import genai
from google.genai import errors, types

from annotator.gateway.base import (
    BlockedError,
    Media,
    ModelCallError,
    ModelRequest,
    ModelResponse,
    RecitationError,
    RetryableError,
)
from annotator.gateway.errors import configured_secrets, redact, retry_after_seconds
from annotator.gateway.gemini_schema import for_gemini
from annotator.gateway.quota import daily_quota, retry_delay_s, storage_quota
from annotator.settings import ModelSettings

log = logging.getLogger(__name__)
_BLOCKING = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_RESOLUTION = {
    "low": types.MediaResolution.MEDIA_RESOLUTION_LOW,
    "medium": types.MediaResolution.MEDIA_RESOLUTION_MEDIUM,
    "high": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
}
# a 20 MB request once base64 (4/3) and the prompt are in: Vertex AI's inline limit (it has no Files API)
VERTEX_INLINE_MAX_BYTES = 14 * 2**20
# "up to 20 GB of files per project, with a per-file maximum size of 2 GB" (ai.google.dev, Files API)
FILES_MAX_BYTES = 2 * 2**30

KEY_HINT = "set GEMINI_API_KEY (or V2S_GEMINI_API_KEY), or V2S_VERTEX_PROJECT for Vertex AI"


class GeminiBackend:
    name = "gemini"

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None
        self._secrets = configured_secrets(settings)
        options = types.HttpOptions(
            base_url=settings.gemini_base_url,
            api_version=settings.gemini_api_version,
            timeout=int(settings.request_timeout_s * 1000),
        )
        if settings.vertex_project:
            self.client = genai.Client(
                vertexai=True,
                project=settings.vertex_project,
                location=settings.vertex_location,
                http_options=options,
            )
        elif key:
            self.client = genai.Client(api_key=key, http_options=options)
        else:
            raise ModelCallError(f"no Gemini credentials: {KEY_HINT}", outcome="auth")
        self._uploads: dict[str, types.File] = {}
        # models whose per-day quota is spent: their calls fail at once (no attempt burnt) until restart
        self._spent: dict[str, str] = {}
        self._upload_lock = threading.RLock()  # re-entered when a Files API error forgets uploads

    # -- media -------------------------------------------------------------------------------------
    def _video_part(self, media: Media, *, upload: bool = False) -> types.Part:
        size = media.path.stat().st_size
        if self.settings.vertex_project and size > VERTEX_INLINE_MAX_BYTES:
            # Vertex AI has no Files API (the SDK raises ValueError): the video goes inline or not at all, and
            # an inline request is capped at 20 MB after base64. Not retried: the same proxy fails the same way.
            raise ModelCallError(
                f"{media.path.name} is {size / 2**20:.1f} MiB: on Vertex AI a video goes inline, at most "
                f"{VERTEX_INLINE_MAX_BYTES / 2**20:.0f} MiB; lower V2S_SPLIT_PROXY__HEIGHT or --max-segment-s"
            )
        if (size <= self.settings.inline_media_max_bytes or self.settings.vertex_project) and not upload:
            part = types.Part.from_bytes(data=media.path.read_bytes(), mime_type=media.mime_type)
        elif size > FILES_MAX_BYTES:
            # refused before a byte is sent: the Files API takes no file over 2 GB, and the same proxy fails the
            # same way every time (an offsets-mode proxy is the whole video)
            raise ModelCallError(
                f"{media.path.name} is {size / 2**30:.2f} GiB: Gemini's Files API takes at most "
                f"{FILES_MAX_BYTES / 2**30:.0f} GB a file; lower V2S_SPLIT_PROXY__HEIGHT or --max-segment-s"
            )
        else:
            uploaded = self._uploaded(media)
            part = types.Part.from_uri(file_uri=uploaded.uri, mime_type=media.mime_type)
        if media.start_offset_s is not None or media.end_offset_s is not None or media.fps:
            part.video_metadata = types.VideoMetadata(
                start_offset=f"{media.start_offset_s}s" if media.start_offset_s is not None else None,
                end_offset=f"{media.end_offset_s}s" if media.end_offset_s is not None else None,
                fps=media.fps,
            )
        return part

    def _uploaded(self, media: Media) -> types.File:
        """Upload once per content hash per process; wait until the file is ACTIVE."""
        with self._upload_lock:
            cached = self._uploads.get(media.sha256)
            if cached is not None and (
                cached.expiration_time is None or cached.expiration_time.timestamp() > time.time() + 600
            ):
                return cached
            uploaded = self.call(lambda: self._shared(media), "upload")
            limit = self.settings.file_active_timeout_s
            deadline = time.monotonic() + limit
            while uploaded.state == types.FileState.PROCESSING:
                if time.monotonic() > deadline:
                    # Not retried: the same upload would wait again; the stage fails with this reason.
                    raise ModelCallError(
                        f"uploaded file {uploaded.name} stayed PROCESSING for more than {limit:g} s "
                        "(V2S_FILE_ACTIVE_TIMEOUT_S)",
                        outcome="timeout",
                    )
                time.sleep(self.settings.file_poll_interval_s)
                uploaded = self.call(lambda name=uploaded.name: self.client.files.get(name=name), "files.get")
            if uploaded.state == types.FileState.FAILED:
                raise ModelCallError(f"Gemini could not process the upload of {media.path.name}")
            self._uploads[media.sha256] = uploaded
            return uploaded

    def _shared(self, media: Media) -> types.File:
        """The upload of this content, named after its hash so that every worker process finds the one upload
        (offsets mode shows one whole-video proxy for all segments of a video): an existing one when it is
        still usable, else a new one under that name (unnamed when the name is taken by a dying file)."""
        name = f"files/v2s-{media.sha256[:35]}"
        found = self._existing(name)
        if found is not None:
            return found

        def upload(named: str | None) -> types.File:
            config = types.UploadFileConfig(
                mime_type=media.mime_type, display_name=media.sha256[:40], name=named
            )
            return self.client.files.upload(file=str(media.path), config=config)

        try:
            return self._with_room(lambda: upload(name), media)
        except errors.APIError as exc:
            if exc.code not in (400, 409):
                raise self._translate(exc, "upload") from None
        # another worker uploaded it meanwhile, or an expiring file holds the name
        return self._existing(name) or self.call(
            lambda: self._with_room(lambda: upload(None), media), "upload"
        )

    def _with_room(self, upload, media: Media) -> types.File:
        """The upload; when the project's Files storage is full (429 FileStorageBytesPerProject, whose RetryInfo
        asks for int64-max seconds), v2s's own uploads this process does not hold are deleted, oldest first, as
        many as the new file needs, and the upload is tried once more. Uploads are deleted once a video's
        stages are final (Gateway.release_uploads), so those left are from finished or crashed runs; one that
        another worker still uses is uploaded again on its next call (403 "File …", below)."""
        try:
            return upload()
        except errors.APIError as exc:
            cap = storage_quota(exc.details) if exc.code == 429 else None
            if cap is None:
                raise
        size = media.path.stat().st_size
        deleted, room = self._make_room(size, cap)
        if deleted or room:
            try:
                return upload()
            except errors.APIError as exc:
                if exc.code != 429 or storage_quota(exc.details) is None:
                    raise
        raise ModelCallError(
            f"Gemini's Files API storage is full ({cap / 2**30:g} GB per project, quota FileStorageBytesPerProject):"
            f" no room for {media.path.name} ({size / 2**20:.1f} MiB) after deleting {deleted} of v2s's own "
            "uploads; delete the project's other files (client.files.delete) or wait for them to expire (48 h), "
            "then resume the job"
        )

    def _make_room(self, size: int, cap: int) -> tuple[int, bool]:
        """Delete v2s's own uploads (named files/v2s-…) not held by this process, oldest first, until a file of
        `size` bytes fits under `cap`: (how many were deleted, whether it fits now)."""
        held = {f.name for f in self._uploads.values()}
        files = list(self.client.files.list())
        need = sum(int(f.size_bytes or 0) for f in files) + size - cap
        ours = sorted(
            (f for f in files if (f.name or "").startswith("files/v2s-") and f.name not in held),
            key=lambda f: f.create_time.timestamp() if f.create_time else 0.0,
        )
        deleted = 0
        for found in ours:
            if need <= 0:
                break
            try:
                self.client.files.delete(name=found.name)
            except errors.APIError as exc:
                if exc.code not in (403, 404):  # gone meanwhile: expired, or another worker made room
                    raise
            need -= int(found.size_bytes or 0)
            deleted += 1
        log.info("Files API storage full: deleted %d of v2s's own uploads to make room", deleted)
        return deleted, need <= 0

    def delete_upload(self, sha256: str) -> bool:
        """Delete the upload of this content (named after its hash, so any process finds it); False when there
        was none (never uploaded, sent inline, or expired)."""
        with self._upload_lock:
            self._uploads.pop(sha256, None)
        try:
            self.client.files.delete(name=f"files/v2s-{sha256[:35]}")
        except errors.APIError as exc:
            if exc.code in (403, 404):
                return False
            raise self._translate(exc, "files.delete") from None
        return True

    def _existing(self, name: str) -> types.File | None:
        try:
            found = self.client.files.get(name=name)
        except errors.APIError as exc:
            if exc.code in (403, 404):
                return None
            raise self._translate(exc, "files.get") from None
        expires = found.expiration_time
        if found.state == types.FileState.FAILED or (
            expires is not None and expires.timestamp() < time.time() + 600
        ):
            return None
        return found

    def check_access(self, model: str) -> None:
        """A free authenticated call (models.get): ModelCallError(outcome="auth") when the key is refused,
        outcome "config" when Gemini does not serve the model (a retired name answers 404 NOT_FOUND)."""

        def get() -> None:
            try:
                self.client.models.get(model=model)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
                raise ModelCallError(f"Gemini does not serve model {model}", outcome="config") from None

        self.call(get, "models.get")

    # -- explicit context caches --------------------------------------------------------------------------
    def create_cache(self, model: str, media: Media, ttl_s: float) -> tuple[str, int]:
        """Cache the video for `ttl_s` seconds: (the cache's name, the tokens it holds). A cache has no
        generationConfig: its video's tokens are fixed when it is made, so the stage's media resolution goes on
        the video part itself (Gemini 3's per-part mediaResolution), or the cache holds it at full resolution."""
        part = self._video_part(media)
        if media.resolution:
            part.media_resolution = types.PartMediaResolution(level=_RESOLUTION[media.resolution].value)
        contents = [types.Content(role="user", parts=[part])]
        config = types.CreateCachedContentConfig(
            contents=contents, ttl=f"{max(1, round(ttl_s))}s", display_name=f"v2s-{media.sha256[:16]}"
        )
        cache = self.call(lambda: self.client.caches.create(model=model, config=config), "caches.create")
        tokens = cache.usage_metadata.total_token_count if cache.usage_metadata else 0
        return cache.name, int(tokens or 0)

    def delete_cache(self, name: str) -> None:
        """Delete a cache (one already gone, expired or deleted, is not an error)."""
        try:
            self.client.caches.delete(name=name)
        except errors.APIError as exc:
            if exc.code not in (403, 404):
                raise self._translate(exc, "caches.delete") from None

    # -- generation --------------------------------------------------------------------------------
    def generate(self, request: ModelRequest) -> ModelResponse:
        spent = self._spent.get(request.model)
        if spent is not None:
            raise ModelCallError(spent, outcome="quota")
        media = request.media
        what = f"{request.stage} generateContent"
        if media is not None and media.cache_name:
            try:
                return self.call(lambda: self._generate(request), what, cache_gone=_CacheGone)
            except _CacheGone:  # the cache expired or was deleted: show the video itself
                log.info("%s: context cache %s is gone; sending the video", request.stage, media.cache_name)
                request = request.model_copy(update={"media": media.model_copy(update={"cache_name": None})})
        try:
            return self.call(lambda: self._generate(request), what)
        except ModelCallError as exc:
            if exc.outcome == "quota":
                self._spent[request.model] = str(exc)
            raise

    def _generate(self, request: ModelRequest) -> ModelResponse:
        """One generateContent; APIError is the caller's to translate."""
        contents, config = self.contents_and_config(request)
        response = self.client.models.generate_content(model=request.model, contents=contents, config=config)
        return self.to_response(request, response)

    def contents_and_config(
        self, request: ModelRequest, *, batch: bool = False
    ) -> tuple[list[types.Content], types.GenerateContentConfig]:
        """The request as google-genai types, for a call or (`batch`: the video always uploaded, so a batch
        stays small; no tier options) a batch item."""
        contents: list[types.Content] = []
        first_parts: list[types.Part] = []
        cached = request.media.cache_name if request.media is not None else None
        if request.media is not None and not cached:
            # Video first: Gemini's implicit context caching keys on the request prefix.
            first_parts.append(self._video_part(request.media, upload=batch))
        turns = [*request.history, ("user", request.prompt)]
        for i, (role, text) in enumerate(turns):
            # never an empty text part: Gemini refuses it (400 "required oneof field 'data'")
            parts = ([*first_parts] if i == 0 else []) + ([types.Part.from_text(text=text)] if text else [])
            if parts:
                contents.append(types.Content(role="model" if role == "assistant" else "user", parts=parts))
        config = types.GenerateContentConfig(
            temperature=request.temperature,
            max_output_tokens=request.max_output_tokens,
            response_mime_type="application/json" if request.response_schema else None,
            response_json_schema=for_gemini(request.response_schema),  # what Gemini accepts of it
            media_resolution=_RESOLUTION.get(request.media.resolution)
            if request.media and request.media.resolution
            else None,
            cached_content=cached,
            thinking_config=_thinking(request.thinking),
            **({} if batch else self._tier_options(request)),
        )
        return contents, config

    def _tier_options(self, request: ModelRequest) -> dict:
        """Flex: `service_tier` on the request, and its own, longer timeout (it answers in minutes)."""
        if request.tier != "flex":
            return {}
        timeout = types.HttpOptions(timeout=int(self.settings.flex_request_timeout_s * 1000))
        return {"service_tier": types.ServiceTier.FLEX, "http_options": timeout}

    def to_response(self, request: ModelRequest, response: types.GenerateContentResponse) -> ModelResponse:
        """The answer, or the error of a blocked or empty one, which carries its usage: Gemini bills the prompt
        (and any thinking) of those too."""
        usage = response.usage_metadata
        candidate = response.candidates[0] if response.candidates else None
        finish = candidate.finish_reason.name if candidate and candidate.finish_reason else None
        answer = ModelResponse(
            text="",
            model=request.model,
            input_tokens=(usage.prompt_token_count or 0) if usage else 0,
            output_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0))
            if usage
            else 0,
            finish_reason=finish,
            tier=_served_tier(usage, request),
            cached_tokens=(usage.cached_content_token_count or 0) if usage else 0,
            thinking_tokens=(usage.thoughts_token_count or 0) if usage else 0,
            served_model=response.model_version,
        )
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise BlockedError(f"Gemini blocked the prompt ({feedback.block_reason})").with_billing(answer)
        if finish == "RECITATION":  # not a safety block: asked differently, the model answers (a repair turn)
            raise RecitationError(
                "Gemini stopped the answer for RECITATION (it would quote long verbatim text)"
            ).with_billing(answer)
        if finish in _BLOCKING:
            raise BlockedError(f"Gemini stopped the answer ({finish})").with_billing(answer)
        text = response.text if candidate is not None else None
        if not text and finish != "MAX_TOKENS":  # an empty cut-off answer is reported as truncated
            what = (
                "an empty response (no candidates)"
                if candidate is None
                else f"an empty answer (finish reason {finish})"
            )
            raise RetryableError(f"Gemini returned {what}", outcome="empty").with_billing(answer)
        return answer.model_copy(update={"text": text or ""})

    def call(self, fn, what: str, *, cache_gone: type[Exception] | None = None):
        try:
            return fn()
        except errors.APIError as exc:
            if (
                cache_gone is not None
                and exc.code in (403, 404)
                and "cachedcontent" in (exc.message or "").lower()
            ):
                raise cache_gone() from None
            raise self._translate(exc, what) from None
        except httpx.TimeoutException:
            raise RetryableError(f"Gemini {what} timed out", outcome="timeout") from None
        except (
            ValueError
        ) as exc:  # the SDK's refusals (e.g. the Files API on Vertex AI): this stage, not the job
            raise ModelCallError(redact(f"Gemini {what} refused by the SDK: {exc}", self._secrets)) from None
        except httpx.TransportError as exc:
            raise RetryableError(f"Gemini {what}: connection problem ({type(exc).__name__})") from None

    def _translate(self, exc: errors.APIError, what: str) -> ModelCallError:
        message = redact(
            f"Gemini {what} failed: HTTP {exc.code} {exc.status or ''} {exc.message or ''}", self._secrets
        )
        # Quota and outage answers first: their texts may mention the API key too ("quota for api_key:…").
        if exc.code == 429 and (quota := daily_quota(exc.details)) is not None:
            # not retried: the quota resets at midnight Pacific time; the stage fails with this reason and a
            # resume after the reset runs it (docs/gateway.md)
            return ModelCallError(
                f"daily quota exhausted for this model ({quota}); resume the job after the quota resets",
                outcome="quota",
            )
        if exc.code == 429 and (cap := storage_quota(exc.details)) is not None:
            # the project's Files storage (not a rate): its RetryInfo asks for int64-max seconds; not retried
            return ModelCallError(
                f"Gemini's Files API storage is full ({cap / 2**30:g} GB per project): delete files or wait for "
                "them to expire (48 h), then resume the job"
            )
        if exc.code == 429 or exc.code >= 500 or exc.code == 408:
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            outcome = (
                "rate_limited" if exc.code == 429 else "timeout" if exc.code in (408, 504) else "server_error"
            )
            waits = [w for w in (retry_after_seconds(headers), retry_delay_s(exc.details)) if w is not None]
            return RetryableError(message, retry_after_s=max(waits, default=None), outcome=outcome)
        text = f"{exc.status} {exc.message} {exc.details}".upper()
        if exc.code == 403 and re.search(r"\bFile\b", exc.message or "", re.IGNORECASE):
            # An uploaded file that expired (48 h) or was deleted: forget it, the next attempt uploads again.
            with self._upload_lock:
                self._uploads.clear()
            return RetryableError(f"{message} (uploading the video again)")
        if exc.code in (401, 403) or "API_KEY_INVALID" in text or "API KEY NOT VALID" in text:
            return ModelCallError(
                f"Gemini rejected the credentials (HTTP {exc.code}): {KEY_HINT}", outcome="auth"
            )
        return ModelCallError(message)


def _thinking(thinking: str | int | None) -> types.ThinkingConfig | None:
    """A level (Gemini 3.x: thinkingLevel) or a token budget (2.5: thinkingBudget), as the catalog says."""
    if thinking is None:
        return None
    if isinstance(thinking, int):
        return types.ThinkingConfig(thinking_budget=thinking)
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(thinking.upper()))


class _CacheGone(Exception):
    """The context cache a request named no longer exists (Gemini: 403 "CachedContent not found")."""


def _served_tier(usage: types.GenerateContentResponseUsageMetadata | None, request: ModelRequest):
    """The tier the answer was served (and billed) at, from usageMetadata.trafficType (ON_DEMAND_FLEX for
    Flex, ON_DEMAND for standard), else the one asked for."""
    traffic = getattr(usage, "traffic_type", None) if usage else None
    if traffic == types.TrafficType.ON_DEMAND_FLEX:
        return "flex"
    if traffic == types.TrafficType.ON_DEMAND:
        return "standard"
    return request.tier
