"""Media facts the annotator and the workers share: where ffmpeg is, and what a file contains (PyAV)."""

from __future__ import annotations

import io
import json
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
            _check_complete(container, video, source, duration, label)
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


def _check_complete(
    container: av.container.InputContainer,
    video: av.VideoStream,
    source: str | Path | bytes,
    duration: float,
    label: str,
) -> None:
    """Refuse a file whose header promises more media than it holds. An MP4 with its index at the front
    (faststart) opens fine and reports its full length when its media data is cut off, so an interrupted upload
    would pass as good and only fail (or silently yield short output) later. The index already holds the byte
    range of every packet, so comparing its last one with the file size costs nothing; a Matroska/WebM header
    states its Segment size the same way."""
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    needed = max((_index_end(s) for s in container.streams), default=0)
    playable = _playable_s(video, size) if needed > size else None
    if needed <= size and _is_matroska(container):
        needed = _ebml_segment_end(_head(source, 64))
    if needed <= size:
        return
    missing = needed - size
    present = (
        f"; only the first ~{playable:.1f} s of {duration:.1f} s are present" if playable is not None else ""
    )
    raise MediaError(
        f"{label}: truncated file: {size:,} of {needed:,} bytes present "
        f"({missing:,} bytes, {100 * missing / needed:.1f}% missing){present}"
    )


def _index_end(stream: av.stream.Stream) -> int:
    """The byte just past the stream's last indexed packet (0 without an index). Packets of one stream are
    written in order, so the last entries are the furthest ones; a few are checked in case of reordering."""
    entries = stream.index_entries
    count = len(entries)
    return max((entries[i].pos + entries[i].size for i in range(max(0, count - 4), count)), default=0)


def _playable_s(video: av.VideoStream, size: int) -> float | None:
    """Roughly how much of the video's packets lie inside the file (binary search over the index)."""
    entries, base = video.index_entries, video.time_base
    if not len(entries) or base is None:
        return None
    low, high = 0, len(entries)  # first entry that does not fit
    while low < high:
        mid = (low + high) // 2
        if entries[mid].pos + entries[mid].size <= size:
            low = mid + 1
        else:
            high = mid
    if low == 0:
        return 0.0
    return max(0.0, float((entries[low - 1].timestamp - (video.start_time or 0)) * base))


_EBML_HEADER, _SEGMENT = 0x1A45DFA3, 0x18538067


def _is_matroska(container: av.container.InputContainer) -> bool:
    return any(name in container.format.name for name in ("matroska", "webm"))


def _head(source: str | Path | bytes, count: int) -> bytes:
    if isinstance(source, bytes):
        return source[:count]
    with open(source, "rb") as raw:
        return raw.read(count)


def _ebml_segment_end(head: bytes) -> int:
    """Where a Matroska/WebM Segment says it ends (0 when its size is unknown or the header is unusual)."""
    try:
        pos = 0
        ident, pos = _ebml_id(head, pos)
        length, pos = _ebml_size(head, pos)
        if ident != _EBML_HEADER or length is None:
            return 0
        pos += length
        ident, pos = _ebml_id(head, pos)
        length, pos = _ebml_size(head, pos)
    except IndexError:  # a header longer than the bytes read: no claim either way
        return 0
    if ident != _SEGMENT or length is None:
        return 0
    return pos + length


def _ebml_id(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    width = 1 + (8 - first.bit_length()) if first else 9
    if width > 4:
        raise IndexError("bad element id")
    return int.from_bytes(data[pos : pos + width], "big"), pos + width


def _ebml_size(data: bytes, pos: int) -> tuple[int | None, int]:
    first = data[pos]
    width = 1 + (8 - first.bit_length()) if first else 9
    if width > 8:
        raise IndexError("bad element size")
    value = int.from_bytes(data[pos : pos + width], "big") & ((1 << (7 * width)) - 1)
    unknown = value == (1 << (7 * width)) - 1  # all ones: "size unknown" (a live or unfinished write)
    return (None if unknown else value), pos + width


def read_provenance(source: str | Path | bytes) -> Provenance | None:
    """The v2s provenance tag of a proxy, or None when the media carries none."""
    try:
        info = probe(source)
    except MediaError:
        return None
    return Provenance.from_tag(info.tags.get(TAG))


def read_transform(source: str | Path | bytes) -> dict | None:
    """How a proxy's picture was made from its source (the `transform` entry the splitter writes beside the
    provenance: letterbox crop in source pixels, deinterlaced, source pixel aspect), or None."""
    try:
        info = probe(source)
    except MediaError:
        return None
    if Provenance.from_tag(info.tags.get(TAG)) is None:
        return None
    transform = json.loads(info.tags[TAG]).get("transform")
    return transform if isinstance(transform, dict) else None
