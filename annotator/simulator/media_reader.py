"""What a request shows and lets the model hear, read from the media it carries (never from metadata).

The picture: every frame's film mark (film_mark.py) gives the film time it shows; what the model saw runs from
the first frame received to just after the last. The sound: the synthetic soundtrack is silence except while a
line is said or a cue sounds (soundtrack.py), so the loudness of what was received, bin by bin, either follows
the screenplay's sounds over the times the picture shows, or it does not (no audio, another span's audio, a
shifted track). Only sound that follows counts as heard.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from annotator.simulator.film_mark import read_mark
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.soundtrack import sound_spans

BIN_S = 0.05  # loudness bins
EDGE_S = 0.15  # bins this close to a sound's start or end are not judged (fades, codec delay)
LOUD_RMS = 0.01  # the soundtrack is digital silence between sounds
HEARD_AGREEMENT = 0.9  # share of judged bins whose loudness must match the screenplay's


class UnreadableMedia(ValueError):
    """The media cannot be decoded, or none of its pictures carries the film mark."""


@dataclass(frozen=True)
class Seen:
    start_s: float  # film time of the first picture received
    end_s: float  # film time just after the last one
    frames: int  # pictures that carried the mark
    audio: bool  # the request carried sound at all (what it is billed for)
    heard: bool  # that sound is the film's sound of [start_s, end_s)
    media_s: float  # length of what was received (file or window), for token counts


def _luma(frame: av.VideoFrame) -> np.ndarray:
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "gray"):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return rows[:, : plane.width]
    return frame.to_ndarray(format="gray")


def _span(times: list[float], step_s: float, where: str) -> tuple[float, float]:
    if not times:
        raise UnreadableMedia(f"none of the pictures of {where} carries the film mark (not a v2s test film?)")
    return times[0], times[-1] + step_s


def read_video(
    source: bytes | Path, screenplay: Screenplay, start_offset_s: float | None, end_offset_s: float | None
) -> Seen:
    """Read a video file's pictures (and sound) between the offsets, as Gemini's videoMetadata clips a file."""
    where = "the video"
    lo, hi = start_offset_s or 0.0, end_offset_s if end_offset_s is not None else float("inf")
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 6)
            times: list[float] = []
            turns, first_pts = None, None
            for frame in container.decode(stream):
                at = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                if at < lo - 1e-3 or at >= hi - 1e-3:
                    continue
                found = read_mark(_luma(frame), turns)
                if found is None:
                    continue
                mark, turns = found
                first_pts = at if first_pts is None else first_pts
                times.append(mark.time_s)
            start, end = _span(times, 1.0 / rate, where)
            heard, audio = _heard(container, screenplay, first_pts or 0.0, start, end)
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise UnreadableMedia(f"{where} is not a readable video ({type(exc).__name__})") from None
    return Seen(start, end, len(times), audio, heard, end - start)


def read_frames(images: list[bytes]) -> Seen:
    """Read sampled JPEG frames (the OpenAI-compatible path): pictures only, so nothing is heard."""
    times = []
    for data in images:
        try:
            picture = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
        except (OSError, ValueError):
            raise UnreadableMedia("an image_url is not a readable picture") from None
        found = read_mark(picture)
        if found is not None:
            times.append(found[0].time_s)
    times.sort()
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    start, end = _span(times, step, f"the {len(images)} frames")
    return Seen(start, end, len(times), audio=False, heard=False, media_s=end - start)


def _heard(
    container, screenplay: Screenplay, first_pts: float, start: float, end: float
) -> tuple[bool, bool]:
    """(heard, audio): whether the file's sound over the pictures' times follows the screenplay's sounds."""
    if not container.streams.audio:
        return False, False
    container.seek(0)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=8000)
    chunks, origin = [], None
    for frame in container.decode(container.streams.audio[0]):
        if origin is None:
            origin = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
        chunks += [f.to_ndarray().ravel() for f in resampler.resample(frame)]
    if not chunks:
        return False, True
    samples = np.concatenate(chunks)
    skip = max(0, round((first_pts - (origin or 0.0)) * 8000))  # the sound under the first picture
    per_bin = round(BIN_S * 8000)
    bins = min(int((end - start) / BIN_S), (len(samples) - skip) // per_bin)
    if bins <= 0:
        return False, True
    window = samples[skip : skip + bins * per_bin].reshape(bins, per_bin)
    loud = np.sqrt((window.astype(np.float64) ** 2).mean(axis=1)) > LOUD_RMS
    centres = start + (np.arange(bins) + 0.5) * BIN_S
    expected = np.zeros(bins, bool)
    judged = np.ones(bins, bool)
    for sound in sound_spans(screenplay):
        expected |= (centres >= sound.start) & (centres < sound.end)
        judged &= (np.abs(centres - sound.start) > EDGE_S) & (np.abs(centres - sound.end) > EDGE_S)
    if not judged.any():
        return True, True
    return bool((loud == expected)[judged].mean() >= HEARD_AGREEMENT), True
