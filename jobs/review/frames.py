"""Seconds ↔ Label Studio video frames.

Label Studio's `<Video>` timeline counts frames from 1 at the tag's declared `frameRate`: frame f is shown from
(f − 1)/fps to f/fps (its editor seeks frame f to time (f − 1)/fps and shows frame ceil(t·fps) at time t,
never less than 1). A `<TimelineLabels>` region's `ranges[{start, end}]` are integer frames, both ends
included. So a span [t0, t1) of proxy seconds covers the frames from floor(t0·fps) + 1 to ceil(t1·fps), and a
region from frame a to frame b covers [(a − 1)/fps, b/fps).
"""

from __future__ import annotations

import math

# a time a hair under a frame boundary (0.9999999 s at 6 fps, from float arithmetic) is that boundary
_EPS = 1e-6


def frame_at(seconds: float, fps: float) -> int:
    """The 1-based frame shown at `seconds` of the video."""
    _check(fps)
    return max(1, math.floor(max(seconds, 0.0) * fps + _EPS) + 1)


def last_frame_before(seconds: float, fps: float) -> int:
    """The last frame that starts before `seconds` (the end frame of a span ending there)."""
    _check(fps)
    return max(1, math.ceil(max(seconds, 0.0) * fps - _EPS))


def span_to_frames(start_s: float, end_s: float, fps: float) -> tuple[int, int]:
    """A span of video seconds as an inclusive (start, end) frame range; a zero-length span is one frame."""
    first = frame_at(start_s, fps)
    return first, max(first, last_frame_before(end_s, fps))


def frame_start_s(frame: int, fps: float) -> float:
    """When frame `frame` (1-based) starts, in video seconds."""
    _check(fps)
    return (max(int(frame), 1) - 1) / fps


def frame_end_s(frame: int, fps: float) -> float:
    """When frame `frame` (1-based) ends, in video seconds."""
    _check(fps)
    return max(int(frame), 1) / fps


def _check(fps: float) -> None:
    if not fps or fps <= 0 or math.isnan(fps):
        raise ValueError(f"a frame rate must be a positive number of frames per second, got {fps!r}")
