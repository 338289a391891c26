"""The response cache seen from the gateway: a key, what is stored, and the protocol a store implements.

The gateway may not import profiles_db (layering), so workers inject the database-backed store
(profiles_db/response_cache.py); the key and the stored answer are schemas (annotator/schemas/cache.py), the
one part of the annotator profiles_db may import. Only validated final answers are stored, never failures: a
failure is worth asking again, a valid answer is not.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from annotator.gateway.base import Media
from annotator.schemas.cache import CachedAnswer, CacheKey


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


class ResponseCache(Protocol):
    def get(self, key: CacheKey) -> CachedAnswer | None: ...

    def put(self, key: CacheKey, entry: CachedAnswer) -> None: ...


__all__ = ["CacheKey", "CachedAnswer", "ResponseCache", "cache_key", "media_key"]
