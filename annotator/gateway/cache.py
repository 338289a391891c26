"""The response cache seen from the gateway: a key, what is stored, and the protocol a store implements.

The gateway may not import profiles_db (layering), so workers inject the database-backed store
(profiles_db/response_cache.py). Only validated final answers are stored, never failures: a failure is worth
asking again, a valid answer is not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from pydantic import BaseModel

from annotator.gateway.base import Media


class CacheKey(BaseModel):
    backend: str
    model: str
    prompt_version: str
    prompt_sha256: str
    media_sha256: str | None = None
    stage: str = ""

    @property
    def digest(self) -> str:
        parts = [self.backend, self.model, self.prompt_version, self.prompt_sha256, self.media_sha256 or ""]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def media_key(media: Media | None) -> str | None:
    """The file's hash plus the window and resolution the model is shown: another window is another question."""
    if media is None:
        return None
    view = [media.sha256, media.start_offset_s, media.end_offset_s, media.fps, media.resolution]
    if view[1:] == [None, None, None, None]:
        return media.sha256
    return hashlib.sha256(json.dumps(view).encode()).hexdigest()


def cache_key(
    *, stage: str, backend: str, model: str, prompt_version: str, prompt_text: str, media: Media | None
):
    return CacheKey(
        backend=backend,
        model=model,
        prompt_version=prompt_version,
        prompt_sha256=hashlib.sha256(prompt_text.encode("utf-8")).hexdigest(),
        media_sha256=media_key(media),
        stage=stage,
    )


class CachedAnswer(BaseModel):
    answer: dict[str, Any]  # the validated value, as JSON
    reasoning_content: str | None = None
    calls: int = 0  # what the original answer cost (a hit itself costs nothing)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class ResponseCache(Protocol):
    def get(self, key: CacheKey) -> CachedAnswer | None: ...

    def put(self, key: CacheKey, entry: CachedAnswer) -> None: ...


class MemoryResponseCache:
    """A dict: for one process without a database (and the gateway's own tests)."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedAnswer] = {}

    def get(self, key: CacheKey) -> CachedAnswer | None:
        return self._entries.get(key.digest)

    def put(self, key: CacheKey, entry: CachedAnswer) -> None:
        self._entries[key.digest] = entry
