"""The blank clip `v2s check` shows an OpenAI-compatible server, so its tiny call has the stage's media shape.

A server that cannot take the clip as v2s sends it (Ollama takes no `video_url`; vLLM refuses more images per
prompt than its `--limit-mm-per-prompt`) refuses every segment the same way; the check finds it before anything
is split. The clip is grey, silent, small, and long enough that frames mode sends as many frames as a segment
at most would (V2S_OPENAI_MAX_FRAMES within V2S_OPENAI_MAX_IMAGES): the limit is checked at its worst case.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from annotator.gateway.base import Media, ModelCallError
from annotator.gateway.media_refusals import frame_cap
from annotator.media import ffmpeg_exe
from annotator.settings import ModelSettings

CLIP_STAGES = ("plot", "script")  # the stages whose requests show the clip
_VIDEO_URL_SECONDS = 2.0  # a video_url is one part whatever its length


def check_media(settings: ModelSettings) -> Media:
    """The blank clip in the shape the stages' requests take under the current settings."""
    if settings.openai_video_mode == "video_url":
        return _blank_clip(_VIDEO_URL_SECONDS)
    # one frame per 1/fps from 0 s: `frame_cap` frames need a little under cap/fps seconds
    return _blank_clip(round(frame_cap(settings) / settings.openai_frame_fps + 0.5, 3))


@cache
def _blank_clip(seconds: float) -> Media:
    """A grey 160×120 H.264 clip at 2 fps, made once per process."""
    target = Path(tempfile.mkdtemp(prefix="v2s-check-")) / f"blank-{seconds:g}s.mp4"
    source = f"color=c=gray:s=160x120:r=2:d={seconds:.3f}"
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i", source]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(target)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelCallError(f"ffmpeg could not make the check's blank clip: {done.stderr.strip()[-300:]}")
    return Media(path=target, sha256=hashlib.sha256(target.read_bytes()).hexdigest())
