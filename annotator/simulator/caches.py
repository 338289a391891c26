"""Gemini's explicit context caches (`cachedContents`), as the simulator plays them.

create (POST /{v}/cachedContents: model, contents, ttl or expireTime, displayName), get, list and delete
(/{v}/cachedContents/{id}); a `generateContent` that names `cachedContent` is answered as if the cache's
contents came first in its own, and its usage counts those tokens in `promptTokenCount` and again in
`cachedContentTokenCount`, as the real API reports them, its video counted at the resolution the cache was
made with (the video part's own `mediaResolution`; the default without one). A cache lives until its expiry (then it is gone: 403
"CachedContent not found (or permission denied)", as Gemini answers) or until it is deleted. The store counts
creations and deletions, so tests can see what a run left behind.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from annotator.simulator.errors import SimError, invalid
from annotator.simulator.gemini_api import GenerateRequest, parse_duration, parse_generate

DEFAULT_TTL_S = 3600.0  # Gemini's default when neither ttl nor expireTime is given


@dataclass
class Cache:
    id: str
    model: str
    display_name: str
    request: GenerateRequest  # its contents, parsed like a request's
    created: float
    expires: float

    def resource(self, version: str, tokens: int) -> dict:
        def stamp(t: float) -> str:
            return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")

        return {
            "name": f"cachedContents/{self.id}",
            "displayName": self.display_name,
            "model": f"models/{self.model}",
            "createTime": stamp(self.created),
            "updateTime": stamp(self.created),
            "expireTime": stamp(self.expires),
            "usageMetadata": {"totalTokenCount": tokens},
        }


@dataclass
class CacheStore:
    caches: dict[str, Cache] = field(default_factory=dict)
    created: int = 0
    deleted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def create(self, body: object, now: float | None = None) -> Cache:
        if not isinstance(body, dict):
            raise invalid("the request body must be a CachedContent object")
        model = str(body.get("model") or "").removeprefix("models/")
        if not model:
            raise invalid("CachedContent.model is required")
        request = parse_generate({"contents": body.get("contents") or []})
        now = time.time() if now is None else now
        ttl = parse_duration(body.get("ttl"), "CachedContent.ttl")
        expires = now + (ttl if ttl is not None else DEFAULT_TTL_S)
        if body.get("expireTime"):
            expires = datetime.fromisoformat(str(body["expireTime"]).replace("Z", "+00:00")).timestamp()
        cache = Cache(secrets.token_hex(8), model, str(body.get("displayName") or ""), request, now, expires)
        with self._lock:
            self.caches[cache.id] = cache
            self.created += 1
        return cache

    def get(self, name: str, now: float | None = None) -> Cache:
        """The live cache called `name` (cachedContents/ID or ID), else the 403 Gemini answers."""
        cid = name.rsplit("/", 1)[-1]
        now = time.time() if now is None else now
        with self._lock:
            cache = self.caches.get(cid)
            if cache is not None and cache.expires <= now:
                del self.caches[cid]
                cache = None
        if cache is None:
            raise SimError(403, f"CachedContent not found (or permission denied): cachedContents/{cid}")
        return cache

    def delete(self, name: str) -> None:
        self.get(name)
        with self._lock:
            if self.caches.pop(name.rsplit("/", 1)[-1], None) is not None:
                self.deleted += 1

    def live(self) -> list[Cache]:
        now = time.time()
        with self._lock:
            return [c for c in self.caches.values() if c.expires > now]


def merged(request: GenerateRequest, cache: Cache, model: str) -> GenerateRequest:
    """A request with its cache's contents first: the video (when the request has none) and their text."""
    if cache.model != model:
        raise invalid(f"cachedContents/{cache.id} was created for {cache.model}, not for {model}")
    if request.video is not None and cache.request.video is not None:
        raise invalid("a request with cachedContent cannot repeat the cached video")
    if request.video is None and cache.request.video is not None:
        # the cached video's tokens were counted when the cache was made, at the resolution it was made with
        # (its part's mediaResolution); the request's own generationConfig.mediaResolution cannot change them
        request.video = cache.request.video
        request.low_resolution = cache.request.low_resolution
    request.texts = [*cache.request.texts, *request.texts]
    request.chars += cache.request.chars
    return request


class CacheEndpoints:
    """The cachedContents routes of the simulator's HTTP handler (a mixin of `http_handler.Handler`)."""

    def _cache_route(self, method: str, parts: list[str]):
        """(endpoint, handler) for /{v}/cachedContents[/{id}], or None."""
        if parts[1] != "cachedContents":
            return None
        if len(parts) == 2:
            return {
                "POST": ("caches.create", self._caches_create),
                "GET": ("caches.list", self._caches_list),
            }.get(method)
        self._cache_id = parts[2]
        return {
            "GET": ("caches.get", self._caches_get),
            "DELETE": ("caches.delete", self._caches_delete),
        }.get(method)

    def _caches_create(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        cache = self.sim.caches.create(self._json(raw))
        self._reply(200, cache.resource(self._version, self.sim.cache_tokens(cache)))

    def _caches_get(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        cache = self.sim.caches.get(self._cache_id)
        self._reply(200, cache.resource(self._version, self.sim.cache_tokens(cache)))

    def _caches_delete(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        self.sim.caches.delete(self._cache_id)
        self._reply(200, {})

    def _caches_list(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        live = self.sim.caches.live()
        body = {"cachedContents": [c.resource(self._version, self.sim.cache_tokens(c)) for c in live]}
        self._reply(200, body if live else {})
