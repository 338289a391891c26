"""Real test videos made with the real ffmpeg binary (no mocks of media)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from annotator.media import ffmpeg_exe
from annotator.simulator.screenplay import Screenplay

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "navy"]


def color_film(
    path: Path, cuts: list[float], duration: float, *, audio: bool = True, size: str = "320x180"
) -> Path:
    """Flat colour shots with hard cuts at `cuts`, a tone track (or none)."""
    bounds = [0.0, *cuts, duration]
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error"]
    for i in range(len(bounds) - 1):
        cmd += [
            "-f",
            "lavfi",
            "-i",
            f"color=c={COLORS[i % len(COLORS)]}:s={size}:r=10:d={bounds[i + 1] - bounds[i]}",
        ]
    n = len(bounds) - 1
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}"]
    cmd += ["-filter_complex", graph, "-map", "[v]"]
    if audio:
        cmd += ["-map", f"{n}:a", "-c:a", "aac"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-t", str(duration), str(path)]
    subprocess.run(cmd, check=True)
    return path


def remux(source: Path, target: Path, *, faststart: bool) -> Path:
    """The same streams in a new container: with the index (moov) at the front (faststart), or at the end as a
    plain ffmpeg mux writes it."""
    flags = ["-movflags", "+faststart"] if faststart else []
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(source), "-c", "copy"]
    subprocess.run([*cmd, *flags, str(target)], check=True)
    return target


def retitled(source: Path, target: Path, title: str) -> Path:
    """The same streams under another title: a different file of the same pictures and sound, as two episodes
    cut from one master are (a byte-identical copy would be one video: jobs.sources drops copies)."""
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(source), "-c", "copy"]
    subprocess.run([*cmd, "-metadata", f"title={title}", str(target)], check=True)
    return target


def cut_off(source: Path, target: Path, fraction: float) -> Path:
    """An interrupted copy: only the first `fraction` of the bytes."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def scene_segments(screenplay: Screenplay, max_segment_s: float = 60.0) -> list[tuple[float, float]]:
    """Scenes packed greedily into segments of at most `max_segment_s`, cut only at scene boundaries (as the
    splitter does on the rendered film)."""
    spans, segments, start = screenplay.scene_spans(), [], 0.0
    for scene_start, scene_end in spans:
        if scene_end - start > max_segment_s and scene_start > start:
            segments.append((start, scene_start))
            start = scene_start
    segments.append((start, spans[-1][1]))
    return segments
