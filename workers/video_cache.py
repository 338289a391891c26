"""A segment's video cached between its plot and script calls (annotator/gateway/context_cache.py).

The plot task makes the cache (when it pays) and stores it with the plot's result, so the script task —
another Ray task, maybe on another node — finds it in the stage state; the script task deletes it once the
script stage is final (done or rejected). Caching never decides an outcome: a cache that cannot be made is
skipped, one that is gone by the script is replaced by sending the video again.
"""

from __future__ import annotations

import logging

from annotator.gateway import Gateway
from annotator.gateway.base import Media, ModelCallError
from annotator.gateway.context_cache import VideoCache, worth_caching

log = logging.getLogger(__name__)


def open_for_plot(gw: Gateway, media: Media, seconds: float, has_audio: bool) -> VideoCache | None:
    settings = gw.settings
    if not worth_caching(settings, seconds, has_audio):
        return None
    try:
        return gw.cache_video(settings.plot_backend, settings.plot_model, media)
    except ModelCallError as exc:  # a refused cache costs nothing: both stages send the video
        log.warning("no context cache for %s: %s", media.path.name, exc)
        return None


def for_script(gw: Gateway, stored: dict | None, media: Media) -> Media:
    """The script's media, reading the plot's cache (`PlotResult.video_cache`) while it lives."""
    if not stored:
        return media
    cache = VideoCache.model_validate(stored)
    if not cache.usable(gw.settings.script_model):
        return media
    return media.model_copy(update={"cache_name": cache.name})


def close(gw: Gateway, stored: dict | None) -> None:
    """Delete the plot's cache (`PlotResult.video_cache`), once the script is final or failed."""
    if not stored:
        return
    try:
        gw.drop_cache(gw.settings.plot_backend, VideoCache.model_validate(stored).name)
    except Exception as exc:  # its TTL ends it anyway
        log.info("context cache %s not deleted (%s); it expires on its own", stored.get("name"), exc)
