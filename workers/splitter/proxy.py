"""Segment proxies: low-resolution cuts with audio and the provenance tag.

All of a video's proxies come from one ffmpeg run: the picture is decoded once, deinterlaced, letterbox-cropped,
scaled to square pixels and the proxy height, encoded once with a keyframe forced at every boundary, and split there
by the segment muxer. The picture is the analysis pass's intermediate when there is one that fits (already
deinterlaced, square and small: see intermediate.py), with the audio taken from the source; else the source. Each part is then re-muxed in-process (stream copy) to carry its own provenance tag and
renamed into place, so no reader ever sees a half-written proxy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from annotator.media import MediaError, ffmpeg_exe, probe
from annotator.schemas.provenance import TAG, Provenance
from workers.splitter.decode import Crop
from workers.splitter.intermediate import Intermediate
from workers.splitter.proxy_check import proxy_problem
from workers.splitter.settings import ProxySettings


@dataclass
class ProxyTransform:
    """What the picture needs before it is shown to a model; recorded in each proxy's tag."""

    deinterlace: bool = False
    crop: Crop | None = None
    sar: Fraction = Fraction(1)

    def video_filter(self, settings: ProxySettings) -> str:
        chain = []
        if self.deinterlace:  # bwdif on flagged frames only: mixed progressive/interlaced sources stay sharp
            chain.append("bwdif=mode=send_frame:deint=interlaced")
        if self.crop is not None and settings.crop_letterbox:
            chain.append(self.crop.filter())
        if settings.square_pixels and self.sar not in (0, 1):
            chain.append("scale=trunc(iw*sar/2)*2:ih")  # anamorphic: widen to the display aspect
        chain += [f"scale=-2:'min({settings.height},ih)'", "setsar=1", f"fps={settings.fps}"]
        return ",".join(chain)

    def intermediate_filter(self, whole: Intermediate, settings: ProxySettings) -> str:
        """The same picture from the intermediate, which is deinterlaced and square already."""
        chain, height = [], whole.source_height
        if self.crop is not None and settings.crop_letterbox:
            crop, height = whole.crop_filter(self.crop.x, self.crop.y, self.crop.width, self.crop.height)
            chain.append(crop)
        # the height the source path would give: the intermediate is taller than the proxy, never the source
        chain += [f"scale=-2:{min(settings.height, height)}", "setsar=1", f"fps={settings.fps}"]
        return ",".join(chain)

    def record(self, settings: ProxySettings) -> dict[str, object]:
        crop = self.crop if settings.crop_letterbox else None
        return {
            "crop": None if crop is None else [crop.x, crop.y, crop.width, crop.height],
            "deinterlaced": self.deinterlace,
            "source_sar": f"{self.sar.numerator}:{self.sar.denominator}",
        }


def tag_text(provenance: Provenance, transform: ProxyTransform, settings: ProxySettings) -> str:
    """The provenance JSON plus how the picture was transformed (extra keys: Provenance reads past them)."""
    data = {**provenance.model_dump(), "transform": transform.record(settings)}
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def cut_parts(
    source: Path,
    spans: list[tuple[float, float]],
    workdir: Path,
    video_filter: str,
    settings: ProxySettings,
    audio: Path | None,
    picture_start_s: float = 0.0,
) -> dict[tuple[float, float], Path]:
    """Cut every span (sorted, non-overlapping) of `source`'s picture and `audio`'s sound (None: no sound; may be
    `source` itself) in one ffmpeg run into `workdir`; returns span → file."""
    spans = sorted(spans)
    first, last = spans[0][0], spans[-1][1]
    bounds = sorted({round(t - first, 3) for span in spans for t in span} - {0.0, round(last - first, 3)})
    times = ",".join(f"{t:.3f}" for t in bounds)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    # ffmpeg counts -ss from each input's own start; the intermediate starts at its first frame, not at the
    # source's origin, so it is put back there to stay in step with the source's audio
    cmd += ["-ss", f"{first:.3f}", "-itsoffset", f"{picture_start_s:.3f}", "-i", str(source)]
    sound = "0:a:0"
    if audio is not None and audio != source:
        cmd += ["-ss", f"{first:.3f}", "-vn", "-sn", "-dn", "-i", str(audio)]
        sound = "1:a:0"
    cmd += ["-t", f"{last - first:.3f}", "-map", "0:v:0"]
    cmd += ["-vf", video_filter, "-c:v", "libx264", "-preset", settings.preset]
    # no B-frames: the muxer would otherwise shift every part's timestamps by the reorder delay
    cmd += ["-crf", str(settings.crf), "-bf", "0", "-pix_fmt", "yuv420p"]
    if audio is not None:
        # the fast AAC coder: same size at this bitrate, ~2.5x less time than the default two-loop search
        cmd += ["-map", sound, "-c:a", "aac", "-aac_coder", "fast"]
        cmd += ["-ac", "1", "-b:a", settings.audio_bitrate]
    if times:
        cmd += ["-force_key_frames", times, "-segment_times", times]
    else:  # one span: without a time the muxer would split at the first keyframe after its default 2 s
        cmd += ["-segment_time", f"{last - first + 60:.0f}"]
    cmd += ["-f", "segment", "-segment_format", "mp4", "-reset_timestamps", "1"]
    cmd += ["-segment_time_delta", f"{1 / (2 * settings.fps):.4f}", str(workdir / "part_%05d.mp4")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        raise MediaError(f"{source}: ffmpeg could not cut proxies {first:.1f}-{last:.1f}s: {tail}")
    edges = [0.0, *bounds]  # the segment muxer numbers its parts from 0, one per edge
    parts = {}
    for span in spans:
        number = edges.index(round(span[0] - first, 3))
        part = workdir / f"part_{number:05d}.mp4"
        if not part.exists():
            raise MediaError(f"{source}: ffmpeg wrote no proxy for {span[0]:.1f}-{span[1]:.1f}s")
        parts[span] = part
    return parts


def retag(part: Path, target: Path, tag: str) -> Path:
    """Copy a part's packets into `target` with the tag, under a temp name first, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # unique per writer: two runs (or two paths to one film) never write into the same partial file
    partial = target.with_name(f"{target.stem}.{uuid.uuid4().hex[:12]}.partial.mp4")
    try:
        with (
            av.open(str(part)) as src,
            av.open(str(partial), "w", format="mp4", container_options={"movflags": "+faststart"}) as out,
        ):
            out.metadata[TAG] = tag
            streams = {
                s.index: out.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")
            }
            for packet in src.demux():
                if packet.dts is None or packet.stream.index not in streams:
                    continue  # the demuxer's flush packets
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    except (av.error.FFmpegError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise MediaError(f"{target}: could not write the proxy ({type(exc).__name__}: {exc})") from None
    partial.replace(target)
    return target


class ProxyBatch:
    """Cuts all of a video's proxies on the first request, then hands each out by index.

    Fits `workers.fetch.ensure_proxy`'s `make(target)` callback: only when some proxy is missing or broken does
    the one ffmpeg run happen; parts nobody asks for are thrown away with the work folder on `close()`."""

    def __init__(
        self,
        source: Path,
        tags: list[Provenance],
        settings: ProxySettings,
        transform: ProxyTransform | None,
        has_audio: bool | None,
        intermediate: Intermediate | None = None,
    ) -> None:
        self.source, self.tags, self.settings = source, {t.segment_index: t for t in tags}, settings
        self.transform, self.has_audio, self.intermediate = transform, has_audio, intermediate
        self._workdir: Path | None = None
        self._parts: dict[tuple[float, float], Path] = {}
        self.runs = 0  # ffmpeg invocations so far (0 or 1)
        self.from_intermediate = False  # whether the pictures came from the intermediate

    def make(self, idx: int, target: Path) -> Path:
        if self._workdir is None:
            self._cut(target.parent)
        tag = self.tags[idx]
        assert self.transform is not None  # set by _cut
        part = self._parts[(tag.start_s, tag.end_s)]
        made = retag(part, target, tag_text(tag, self.transform, self.settings))
        problem = proxy_problem(
            made, tag.start_s, tag.end_s, audio=bool(self.has_audio), fps=self.settings.fps
        )
        if problem is not None:  # never leave a wrong proxy where a later run would take it as made
            made.unlink(missing_ok=True)
            raise MediaError(f"{self.source}: {problem}")
        return made

    def _cut(self, near: Path) -> None:
        from workers.splitter.sample import sample_transform  # only a resume without an analysis needs it

        if self.transform is None:
            self.transform = sample_transform(self.source, self.settings)
        if self.has_audio is None:
            self.has_audio = probe(self.source).has_audio
        near.mkdir(parents=True, exist_ok=True)  # the work folder sits beside the targets: renames stay local
        self._workdir = Path(tempfile.mkdtemp(prefix=".v2s-cut-", dir=near))
        spans = [(t.start_s, t.end_s) for t in self.tags.values()]
        audio = self.source if self.has_audio else None
        whole = self.intermediate
        if whole is not None and whole.fits(self.transform.deinterlace, self.settings):
            picture, vf = whole.path, self.transform.intermediate_filter(whole, self.settings)
            start = whole.start_s
        else:
            picture, vf, start = self.source, self.transform.video_filter(self.settings), 0.0
        self._parts = cut_parts(picture, spans, self._workdir, vf, self.settings, audio, start)
        self.from_intermediate = picture != self.source
        self.runs += 1

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> ProxyBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
