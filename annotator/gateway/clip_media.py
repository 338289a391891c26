"""What of a proxy an OpenAI-compatible server is sent: the clip's window as a video file, or frames sampled
from it with their times.

Chat servers take no `videoMetadata`: a segment addressed by offsets in one proxy of the whole video (offsets
mode) must be cut to its window before it is sent, or the model watches the whole video for every segment.
Frames are picked from the window's first frame on, one per 1/fps seconds, and their real times are told to
the model (a source at 5 fps sampled at 2 fps gives frames 0.6 s apart, not 0.5).
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av

from annotator.gateway.base import Media, ModelCallError
from annotator.media import MediaError, ffmpeg_exe, probe
from annotator.schemas.provenance import TAG, Provenance

JPEG_QUALITY = 85


@dataclass(frozen=True)
class SampledFrames:
    images: list[bytes]  # JPEG
    times: list[float]  # seconds from the start of the window, one per image
    fps: float  # the rate asked for after the max_frames cap

    def describe(self) -> str:
        """The frames' times as the model is told them."""
        stamps = ", ".join(f"{t:.1f}" for t in self.times)
        return (
            f"The video is shown as {len(self.images)} frames in order, taken at these seconds from the start of "
            f"the clip: {stamps}."
        )


def _window(media: Media) -> tuple[float, float, str | None]:
    """(start, end) of the window in the file, and the proxy's provenance narrowed to it."""
    try:
        info = probe(media.path)
    except MediaError as exc:
        raise ModelCallError(f"cannot read the clip: {exc}") from None
    start = media.start_offset_s or 0.0
    end = min(info.duration_s, media.end_offset_s) if media.end_offset_s is not None else info.duration_s
    return start, end, _window_tag(info.tags.get(TAG), media)


def sample_frames(media: Media, fps: float, max_frames: int) -> SampledFrames:
    """JPEG frames of the clip (its window when offsets are set) at `fps`, fewer when that exceeds `max_frames`.

    Each frame carries the proxy's provenance (narrowed to the window) in its JPEG comment, for people."""
    start, end, tag = _window(media)
    fps = max(min(fps, max_frames / max(end - start, 0.1)), 1e-3)
    images, times, due = [], [], start
    try:
        with av.open(str(media.path)) as container:
            stream = container.streams.video[0]
            if start > 0:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                at = frame.time or 0.0
                if at < start - 1e-3 or at + 1e-3 < due:
                    continue
                if at >= end - 1e-3 or len(images) >= max_frames:
                    break
                buffer = io.BytesIO()
                frame.to_image().save(buffer, "JPEG", quality=JPEG_QUALITY)
                images.append(_with_comment(buffer.getvalue(), tag) if tag else buffer.getvalue())
                times.append(round(at - start, 3))
                while due <= at + 1e-3:  # the next pick on the 1/fps grid from the window's start
                    due += 1 / fps
    except (av.error.FFmpegError, IndexError) as exc:
        raise ModelCallError(f"cannot sample frames of {media.path.name}: {type(exc).__name__}") from None
    if not images:
        raise ModelCallError(f"no frames could be sampled from {media.path.name}")
    return SampledFrames(images, times, fps)


def window_video(media: Media) -> bytes:
    """The clip's bytes: the proxy itself, or its offsets window cut out (re-encoded at the window's first
    frame, as the whole video's proxy has no keyframe there), sound included."""
    if media.start_offset_s is None and media.end_offset_s is None:
        return media.path.read_bytes()
    start, end, tag = _window(media)
    with tempfile.TemporaryDirectory(prefix="v2s-window-") as folder:
        target = Path(folder) / "window.mp4"
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
        cmd += ["-ss", f"{start:.3f}", "-i", str(media.path), "-t", f"{end - start:.3f}"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-pix_fmt", "yuv420p"]
        cmd += ["-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart"]
        cmd += ["-metadata", f"comment={tag}"] if tag else []
        done = subprocess.run([*cmd, str(target)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = done.stderr.strip()[-300:]
            raise ModelCallError(f"ffmpeg could not cut {start:.1f}-{end:.1f}s of {media.path.name}: {tail}")
        return target.read_bytes()


def _window_tag(tag: str | None, media: Media) -> str | None:
    provenance = Provenance.from_tag(tag)
    if provenance is None:
        return None
    if media.start_offset_s is None and media.end_offset_s is None:
        return provenance.to_tag()
    start = provenance.start_s + (media.start_offset_s or 0.0)
    end = provenance.end_s
    if media.end_offset_s is not None:
        end = min(end, provenance.start_s + media.end_offset_s)
    return provenance.model_copy(update={"start_s": start, "end_s": end}).to_tag()


def _with_comment(jpeg: bytes, comment: str) -> bytes:
    """Insert a COM segment (FFFE) right after the JPEG's start-of-image marker."""
    body = comment.encode()[:65000]
    return jpeg[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]
