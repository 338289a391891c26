"""Is a proxy what its span says it is? Its picture as long as the span (within one proxy frame and a little),
and sound when the source has sound.

A proxy that shows less than its span (ffmpeg's segment muxer splitting at its own default time, a cut-off
copy, another segment's file put in its place) would pair a clip with a script of more than it shows, and no
later check can see that: the records look whole. So every proxy is measured where it is made, where it is
reused, and by `v2s verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from annotator.media import MediaError

SLACK_S = 0.1  # container rounding and the AAC frame at the end, on top of one proxy frame


@dataclass(frozen=True)
class ProxyFacts:
    video_s: float  # length of the picture
    audio_s: float | None  # length of the sound; None: no audio stream


def measure(path: Path) -> ProxyFacts:
    """The picture's and the sound's lengths, read from the file's streams (MediaError when unreadable)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: the proxy has no video stream")
            video = container.streams.video[0]
            audio = container.streams.audio[0] if container.streams.audio else None
            return ProxyFacts(_length(container, video), None if audio is None else _length(container, audio))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: the proxy is not a readable video ({type(exc).__name__})") from None


def _length(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return (container.duration or 0) / av.time_base


def proxy_problem(path: Path, start_s: float, end_s: float, *, audio: bool, fps: float) -> str | None:
    """Why the proxy at `path` is not a proxy of [start_s, end_s] (with sound when `audio`); None when it is."""
    try:
        facts = measure(path)
    except MediaError as exc:
        return str(exc)
    span, tolerance = end_s - start_s, 1.0 / fps + SLACK_S
    where = f"{path}: proxy of {start_s:.2f}-{end_s:.2f}s ({span:.2f}s)"
    if abs(facts.video_s - span) > tolerance:
        return f"{where} shows {facts.video_s:.2f}s of picture (tolerance {tolerance:.2f}s)"
    if audio and facts.audio_s is None:
        return f"{where} has no sound although its source has"
    if audio and facts.audio_s is not None and abs(facts.audio_s - span) > tolerance:
        return f"{where} has {facts.audio_s:.2f}s of sound (tolerance {tolerance:.2f}s)"
    return None
