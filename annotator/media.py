"""Media facts the annotator and the workers share: where ffmpeg is, and what a file contains (PyAV)."""

from __future__ import annotations

import io
import os
import shutil
from functools import cache
from pathlib import Path

import av
from pydantic import BaseModel

from annotator.schemas.provenance import TAG, Provenance


class MediaError(ValueError):
    """A media file that cannot be used; the message names the file and what is wrong with it."""


class MediaInfo(BaseModel):
    duration_s: float
    fps: float
    width: int
    height: int
    has_audio: bool
    video_codec: str
    tags: dict[str, str] = {}


@cache
def ffmpeg_exe() -> str:
    """$V2S_FFMPEG, else the system ffmpeg, else the static binary imageio-ffmpeg ships."""
    explicit = os.environ.get("V2S_FFMPEG")
    if explicit:
        return explicit
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(source: str | Path | bytes, *, name: str | None = None) -> MediaInfo:
    """Probe a local path or in-memory bytes; raises MediaError naming the input and the reason."""
    label = name or (f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source))
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.exists():
            raise MediaError(f"{label}: file does not exist")
        if path.stat().st_size == 0:
            raise MediaError(f"{label}: file is empty (0 bytes)")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        with av.open(handle, mode="r") as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            if video is None:
                raise MediaError(f"{label}: no video stream")
            has_audio = any(s.type == "audio" for s in container.streams)
            duration = _duration(container, video)
            if duration <= 0:
                raise MediaError(f"{label}: zero-length video")
            rate = video.average_rate or video.guessed_rate or 0
            tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
            return MediaInfo(
                duration_s=duration,
                fps=float(rate) if rate else 0.0,
                width=int(video.codec_context.width or 0),
                height=int(video.codec_context.height or 0),
                has_audio=has_audio,
                video_codec=str(video.codec_context.name),
                tags=tags,
            )
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{label}: not a readable video ({type(exc).__name__}: {exc})") from None


def _duration(container: av.container.InputContainer, video: av.VideoStream) -> float:
    if container.duration:
        return container.duration / av.time_base
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return 0.0


def read_provenance(source: str | Path | bytes) -> Provenance | None:
    """The v2s provenance tag of a proxy, or None when the media carries none."""
    try:
        info = probe(source)
    except MediaError:
        return None
    return Provenance.from_tag(info.tags.get(TAG))
