"""Explicit context caching of a segment's video between its plot and script calls, where it pays.

Both stages watch the same clip; without a cache the video's tokens are paid twice at the input price. With
one, they are paid once when the cache is made (at the input price: the conservative reading of Gemini's
pricing), then read twice at the cached price, plus the cache's storage for its TTL — worth it when the two
stages use the same Gemini model at the same media resolution, the clip is at least the model's smallest
cacheable size, and at the stages' tiers the cache costs less than sending the video twice. The cache is deleted once the script stage is final; its TTL bounds it when that never comes.

A batch-tier stage reads a cache only when its TTL covers the batch's expected wait (Gemini targets 24 h):
its items run minutes to hours after they were made, by when a shorter-lived cache is gone. With one reader
left a cache never pays (it is made at the input price), so in practice a batch-tier stage with the default
TTL means no cache at all; the plan (jobs/plan.py) prices the same choice.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from annotator.gateway.base import Media
from annotator.settings import ModelSettings


class VideoCache(BaseModel):
    name: str
    model: str
    tokens: int
    expires_at: float  # epoch seconds
    cost_usd: float  # making it (input price) and keeping it for its TTL

    def usable(self, model: str, margin_s: float = 5.0) -> bool:
        return self.model == model and self.expires_at - margin_s > time.time()


def reads_cache(settings: ModelSettings, tier: str, ttl_s: float | None = None) -> bool:
    """Whether a stage at `tier` can read a cache of `ttl_s` (default: the configured TTL): a batch item runs
    up to `batch_expected_wait_s` after it was made, and the cache must still be there."""
    ttl = settings.context_cache_ttl_s if ttl_s is None else ttl_s
    return tier != "batch" or ttl >= settings.batch_expected_wait_s


def worth_caching(settings: ModelSettings, seconds: float, has_audio: bool) -> bool:
    if not settings.context_cache or settings.plot_backend != "gemini" or settings.script_backend != "gemini":
        return False
    tiers = (settings.tier("plot"), settings.tier("script"))
    if not all(reads_cache(settings, tier) for tier in tiers):
        return False  # a batch-tier stage outlives the cache: only one stage would read it, which never pays
    if settings.plot_model != settings.script_model:
        return False
    if settings.plot_media_resolution != settings.script_media_resolution:
        return False
    price = settings.price(settings.script_model)
    if price.cached_input_per_m is None or not price.min_cache_tokens:
        return False
    media = settings.price_table().media
    tokens = media.video_tokens(seconds, has_audio=has_audio, resolution=settings.script_media_resolution)
    if tokens < price.min_cache_tokens:
        return False
    # what the two calls pay for the video at their tiers, without and with the cache (made at the input
    # price): at Flex or Batch's half price, making a cache at full price costs more than it saves
    sent = sum(price.cost(tokens, 0, tier) for tier in tiers)
    read = sum(price.cost(tokens, 0, tier, cached_tokens=tokens) for tier in tiers)
    making = price.cost(tokens, 0) + price.storage_cost(tokens, settings.context_cache_ttl_s)
    return making + read < sent


def create_video_cache(backend, settings: ModelSettings, model: str, media: Media) -> VideoCache:
    """Make the cache through the backend (Gemini's caches.create) and price it."""
    ttl = settings.context_cache_ttl_s
    if media.resolution is None and settings.plot_media_resolution:  # the two stages' (worth_caching)
        media = media.model_copy(update={"resolution": settings.plot_media_resolution})
    name, tokens = backend.create_cache(model, media, ttl)
    price = settings.price(model)
    cost = price.cost(tokens, 0) + price.storage_cost(tokens, ttl)
    return VideoCache(name=name, model=model, tokens=tokens, expires_at=time.time() + ttl, cost_usd=cost)
