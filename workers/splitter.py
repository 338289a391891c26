"""Split a video into segments at shot boundaries (PySceneDetect), preferring silences, and cut proxies."""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from pathlib import Path

import ffmpeg
import scenedetect
from pydantic import BaseModel

from annotator.media import MediaError, MediaInfo, ffmpeg_exe, probe
from annotator.schemas.provenance import Provenance

_SILENCE = re.compile(r"silence_(start|end): (-?[\d.]+)")


class SegmentPlan(BaseModel):
    idx: int
    start_s: float
    end_s: float


def detect_shots(path: Path) -> list[float]:
    """Shot-cut times in seconds (PySceneDetect's adaptive detector)."""
    scenes = scenedetect.detect(str(path), scenedetect.AdaptiveDetector(), show_progress=False)
    return [start.seconds for start, _ in scenes[1:]]


def detect_silences(path: Path, *, noise_db: float = -40.0, min_s: float = 0.4) -> list[tuple[float, float]]:
    """Silent intervals (ffmpeg silencedetect); a cut inside one never splits a line of dialogue."""
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostats",
        "-i",
        str(path),
        "-vn",
        "-af",
        f"silencedetect=noise={noise_db}dB:d={min_s}",
        "-f",
        "null",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    spans, start = [], None
    for kind, value in _SILENCE.findall(proc.stderr):
        if kind == "start":
            start = max(0.0, float(value))
        elif start is not None:
            spans.append((start, float(value)))
            start = None
    return spans


def plan_segments(
    duration_s: float,
    cuts: list[float],
    max_segment_s: float,
    silences: list[tuple[float, float]] = (),
    *,
    min_segment_s: float = 5.0,
) -> list[SegmentPlan]:
    """Greedy: from each start, cut at the latest shot boundary within `max_segment_s`, preferring one inside a
    silence in the window's last half; with no boundary in reach, cut at the limit (inside a silence if possible)."""

    def silent(t: float) -> bool:
        return any(a - 0.05 <= t <= b + 0.05 for a, b in silences)

    bounds = sorted(c for c in set(cuts) if 0 < c < duration_s)
    plans, start = [], 0.0
    while duration_s - start > max_segment_s:
        limit = start + max_segment_s
        window = [c for c in bounds if start + min_segment_s <= c <= limit]
        quiet = [c for c in window if silent(c) and c >= start + max_segment_s / 2]
        if quiet:
            cut = quiet[-1]
        elif window:
            cut = window[-1]
        else:
            cut = next(
                (min(b, limit) for a, b in reversed(silences) if start + min_segment_s < a < limit), limit
            )
        plans.append(SegmentPlan(idx=len(plans) + 1, start_s=round(start, 3), end_s=round(cut, 3)))
        start = cut
    if duration_s - start > 0.5 or not plans:
        plans.append(SegmentPlan(idx=len(plans) + 1, start_s=round(start, 3), end_s=round(duration_s, 3)))
    else:  # a sliver at the end joins the previous segment
        plans[-1] = plans[-1].model_copy(update={"end_s": round(duration_s, 3)})
    return plans


def make_proxy(
    source: Path, target: Path, provenance: Provenance, *, height: int = 360, fps: float = 6.0
) -> Path:
    """A low-resolution cut with audio and the provenance tag, written atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer: two runs (or two paths to one film) never cut into the same partial file
    partial = target.with_name(f"{target.stem}.{uuid.uuid4().hex[:12]}.partial.mp4")
    stream = ffmpeg.input(str(source), ss=provenance.start_s, t=provenance.end_s - provenance.start_s)
    video = stream.video.filter("scale", -2, f"min({height},ih)").filter("fps", fps)
    args = {
        "vcodec": "libx264",
        "preset": "veryfast",
        "crf": 30,
        "pix_fmt": "yuv420p",
        "metadata": f"{'comment'}={provenance.to_tag()}",
        "movflags": "+faststart",
    }
    outputs = [video, stream.audio] if _has_audio(source) else [video]
    if len(outputs) == 2:
        args.update({"acodec": "aac", "ac": 1, "audio_bitrate": "64k"})
    try:
        ffmpeg.output(*outputs, str(partial), **args).overwrite_output().run(
            cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True
        )
    except ffmpeg.Error as exc:
        partial.unlink(missing_ok=True)
        tail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
        raise MediaError(
            f"{source}: ffmpeg could not cut {provenance.start_s:.1f}-{provenance.end_s:.1f}s: {' '.join(tail)}"
        ) from None
    partial.replace(target)
    return target


def _has_audio(path: Path) -> bool:
    try:
        return probe(path).has_audio
    except MediaError:
        return False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "MediaInfo",
    "SegmentPlan",
    "detect_shots",
    "detect_silences",
    "file_sha256",
    "make_proxy",
    "plan_segments",
]
