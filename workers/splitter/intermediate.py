"""The whole video at (about) proxy size, written from the frames the analysis pass decodes anyway.

Cutting the segment proxies straight from the source would decode the full-resolution video a second time, which
costs as much as the analysis itself. Instead the analysis hands every frame it decodes to an `IntermediateWriter`,
which keeps one frame per proxy tick (the proxy rate, so ~1/5 of a 30 fps film), deinterlaces first when the
source is interlaced, scales to square pixels a little taller than the proxy and encodes it fast (MPEG-4 Part 2) into a small
Matroska file on the source's timeline. The proxies are then cut from that file (a cheap decode), with the
letterbox crop, known only once the whole film was seen, applied there in its own coordinates.

Its height is `intermediate_headroom` × the proxy height (never more than the source): a letterboxed film's proxy
is as tall as its cropped rows there, never upscaled. A rotated source is not written (the display matrix would
have to be applied here): its proxies come from the source as before.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.reformatter import VideoReformatter

from workers.splitter.settings import ProxySettings

log = logging.getLogger(__name__)
TIME_BASE = Fraction(1, 1000)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


@dataclass
class Intermediate:
    """A finished intermediate and how its pixels map to the source's coded pixels."""

    path: Path
    width: int
    height: int
    source_width: int
    source_height: int
    deinterlaced: bool
    height_setting: int  # the proxy settings it was written for
    fps_setting: float
    headroom_setting: float
    start_s: float = 0.0  # its first frame on the source's timeline (a later video start than the audio's)

    def fits(self, deinterlace: bool, settings: ProxySettings) -> bool:
        """Whether proxies with this transform and these settings can be cut from it."""
        return (
            self.path.exists()
            and deinterlace == self.deinterlaced
            and settings.height == self.height_setting
            and settings.fps == self.fps_setting
            and settings.intermediate_headroom == self.headroom_setting
        )

    def crop_filter(self, x: int, y: int, width: int, height: int) -> tuple[str, int]:
        """A crop given in source pixels, as a crop filter in this file's pixels, and the cropped height here
        and in the source (the proxy is never taller than either)."""
        sx, sy = self.width / self.source_width, self.height / self.source_height
        cw, ch = min(_even(width * sx), self.width), min(_even(height * sy), self.height)
        cx, cy = (
            min(_even(x * sx) if x else 0, self.width - cw),
            min(_even(y * sy) if y else 0, self.height - ch),
        )
        return f"crop={cw}:{ch}:{cx}:{cy}", min(height, ch)


class IntermediateWriter:
    """Fed every decoded frame in presentation order (`add`); `finish` returns the file, or None when it could
    not be written (the proxies then come from the source, so nothing is lost but time)."""

    def __init__(
        self, path: Path, video: av.VideoStream, sar: Fraction, settings: ProxySettings, origin: float
    ) -> None:
        ctx = video.codec_context
        self.origin = origin  # the container's start time: proxy times count from it, as ffmpeg -ss does
        self.path, self.settings = path, settings
        self.source = (ctx.width, ctx.height)
        self.height = min(_even(ctx.height), _even(settings.height * settings.intermediate_headroom))
        self.width = _even(ctx.width * float(sar) * self.height / ctx.height)
        rate = video.average_rate or video.guessed_rate
        self.slack = (
            0.5 / float(rate) if rate else 0.0
        )  # half a source frame: the frame nearest a tick is kept
        self.scaler = VideoReformatter()
        self.graph: av.filter.Graph | None = None
        self.deinterlaced = False
        self.last_tick, self.last_pts = -1, -1
        self.first_s: float | None = None
        self.started = False
        self.failed: str | None = None
        self.container: av.container.OutputContainer | None = None
        self.stream: av.VideoStream | None = None
        self.video = video

    def add(self, frame: av.VideoFrame, time_s: float) -> None:
        if self.failed is not None:
            return
        try:
            if not self.started:
                self._start(frame)
                if self.failed is not None:
                    return
            if self.graph is None:
                self._keep(frame, time_s)
                return
            self.graph.vpush(frame)
            self._drain()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def finish(self) -> Intermediate | None:
        try:
            if self.graph is not None and self.failed is None:
                self.graph.vpush(None)
                self._drain()
            if self.stream is not None and self.container is not None and self.failed is None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            if self.container is not None:
                self.container.close()
        if self.failed is not None or self.last_tick < 0:
            self.path.unlink(missing_ok=True)
            return None
        return Intermediate(
            path=self.path,
            width=self.width,
            height=self.height,
            source_width=self.source[0],
            source_height=self.source[1],
            deinterlaced=self.deinterlaced,
            height_setting=self.settings.height,
            fps_setting=self.settings.fps,
            headroom_setting=self.settings.intermediate_headroom,
            start_s=self.first_s or 0.0,
        )

    def _start(self, frame: av.VideoFrame) -> None:
        self.started = True
        if int(getattr(frame, "rotation", 0) or 0):
            self.failed = "rotated source"
            return
        mode = self.settings.deinterlace
        if mode == "always" or (mode == "auto" and frame.interlaced_frame):
            # bwdif needs every field at the full rate, so it runs before frames are dropped to the proxy rate
            self.graph = av.filter.Graph()
            source = self.graph.add_buffer(template=self.video)
            deint = "all" if mode == "always" else "interlaced"
            bwdif = self.graph.add("bwdif", f"mode=send_frame:deint={deint}")
            sink = self.graph.add("buffersink")
            source.link_to(bwdif)
            bwdif.link_to(sink)
            self.graph.configure()
            self.deinterlaced = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), "w", format="matroska")
        rate = Fraction(self.settings.fps).limit_denominator(1001)
        # MPEG-4 Part 2 at its finest quantiser: about 50 dB PSNR (nearly lossless before the proxy's own encode),
        # less than half x264 ultrafast's CPU time per frame, and a cheaper decode when the proxies are cut
        stream = self.container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = TIME_BASE
        stream.options = {"q:v": "2", "g": str(max(1, round(self.settings.fps * 2)))}
        self.stream = stream

    def _drain(self) -> None:
        assert self.graph is not None
        while True:
            try:
                out = self.graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            if out.time is not None:
                self._keep(out, out.time - self.origin)

    def _keep(self, frame: av.VideoFrame, time_s: float) -> None:
        assert self.stream is not None and self.container is not None
        tick = math.floor((time_s + self.slack) * self.settings.fps)
        if tick <= self.last_tick:
            return
        self.last_tick = tick
        self.first_s = time_s if self.first_s is None else self.first_s
        small = self.scaler.reformat(
            frame, width=self.width, height=self.height, format="yuv420p", interpolation="AREA", threads=1
        )
        self.last_pts = max(round(time_s / TIME_BASE), self.last_pts + 1)
        small.pts, small.time_base = self.last_pts, TIME_BASE
        for packet in self.stream.encode(small):
            self.container.mux(packet)

    def _fail(self, why: str) -> None:
        self.failed = why
        log.warning("%s: no intermediate (%s); proxies are cut from the source", self.path, why)
