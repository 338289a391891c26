"""What an OpenAI-compatible server's refusal of a clip's media means, as one line naming the setting to change.

A server that cannot take the clip the way v2s sends it refuses every segment the same way, so these are
settings problems (outcome "config"), found by `v2s check` (its calls carry the stage's media shape) or, at
the latest, by a stage's first call:

- vLLM refuses more images or videos per prompt than its `--limit-mm-per-prompt` allows: "At most N image(s)
  may be provided in one prompt." (vllm/multimodal/processing/context.py). Frames mode sends up to
  V2S_OPENAI_MAX_FRAMES images; V2S_OPENAI_MAX_IMAGES tells v2s the server's limit, and frames are then capped
  at it. v2s does not lower the frame count on its own: a clip of 1 or 4 frames is a much poorer annotation,
  and that is the user's choice to make, not a silent fallback.
- Ollama's OpenAI-compatible endpoint takes text and image parts only; a `video_url` part is a 400 "invalid
  message format" (ollama/ollama openai/openai.go). Frames mode is what it takes.
"""

from __future__ import annotations

import re

from annotator.gateway.base import ModelCallError
from annotator.settings import ModelSettings

_AT_MOST = re.compile(r"At most (\d+) (image|video)\(s\) may be provided in one (?:prompt|request)")


def sent_parts(body: dict) -> dict[str, int]:
    """How many image_url and video_url parts a chat body carries."""
    counts = {"image_url": 0, "video_url": 0}
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in counts:
                counts[part["type"]] += 1
    return counts


def media_refusal(message: str, body: dict, settings: ModelSettings, server: str) -> ModelCallError | None:
    """The one-line settings error a 400 about the request's media stands for, or None."""
    sent = sent_parts(body)
    limit = _AT_MOST.search(message)
    if limit is not None:
        allowed, modality = int(limit.group(1)), limit.group(2)
        if modality == "video" or allowed == 0:
            fix = (
                "set V2S_OPENAI_VIDEO_MODE=frames"
                if modality == "video"
                else "choose a vision model (the server takes no images)"
            )
            text = f"{server} takes at most {allowed} {modality}(s) per prompt (vLLM --limit-mm-per-prompt): {fix}"
            return ModelCallError(text, outcome="config")
        return ModelCallError(
            f"{server} takes at most {allowed} image(s) per prompt (vLLM --limit-mm-per-prompt) and frames "
            f"mode sent {sent['image_url']}: set V2S_OPENAI_MAX_IMAGES={allowed} (frames are then capped at "
            f"{allowed}) or start vLLM with --limit-mm-per-prompt '{{\"image\": {settings.openai_max_frames}}}'",
            outcome="config",
        )
    if sent["video_url"] and "invalid message format" in message:
        return ModelCallError(
            f"{server} refused the clip's video_url part ({message.strip()}): the server takes no video "
            "(Ollama's OpenAI-compatible endpoint takes text and images only); set V2S_OPENAI_VIDEO_MODE=frames",
            outcome="config",
        )
    return None


def frame_cap(settings: ModelSettings) -> int:
    """How many frames frames mode sends at most: V2S_OPENAI_MAX_FRAMES within the server's image limit."""
    if settings.openai_max_images is None:
        return settings.openai_max_frames
    return min(settings.openai_max_frames, settings.openai_max_images)
