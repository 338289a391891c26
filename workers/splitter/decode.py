"""One pass over a video with PyAV: every frame decoded once and scaled to the analysis size, the audio decoded and
resampled for the VAD in the same demux loop, subtitle packets read for their times.

PyAV decodes with the FFmpeg libraries it ships (AV1, VP9, HEVC 10-bit, MPEG-2, interlaced H.264 alike) and
raises on a failing packet instead of logging a warning, so no format silently yields no frames. The frames that
did decode are counted against the stream's rate over the time they cover: a shortfall fails the video with a
reason naming the file, because missing frames mean missed cuts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from annotator.media import MediaError
from workers.splitter.features import FeatureBuilder, Features
from workers.splitter.intermediate import Intermediate, IntermediateWriter
from workers.splitter.settings import ProxySettings, ShotSettings, SplitSettings
from workers.splitter.shots import SceneDetectFeeder
from workers.splitter.speech import RATE, Span, SpeechCurve, SpeechTrack, empty_curve, merge_spans

log = logging.getLogger(__name__)
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text", "subviewer", "microdvd"}


@dataclass
class Crop:
    """A letterbox/pillarbox crop in the source's coded pixels."""

    x: int
    y: int
    width: int
    height: int

    def filter(self) -> str:
        return f"crop={self.width}:{self.height}:{self.x}:{self.y}"


@dataclass
class Analysis:
    features: Features
    fps: float
    width: int
    height: int
    sar: Fraction
    rotation: int
    interlaced: bool
    crop: Crop | None
    speech: SpeechCurve
    subtitles: list[Span]
    external_cuts: list[int] | None = None  # PySceneDetect's cut frames when that detector was chosen
    decode_errors: int = 0
    notes: list[str] = field(default_factory=list)
    intermediate: Intermediate | None = None  # the whole video at proxy size, when one was asked for


def analysis_size(width: int, height: int, sar: Fraction, target_width: int) -> tuple[int, int]:
    """Analysis frame size with the display aspect (square pixels), even dimensions."""
    display = (width * sar) / height if height else Fraction(16, 9)
    w = target_width // 2 * 2
    h = max(16, round(w / float(display) / 2) * 2)
    return w, h


def tall_height(height: int) -> int:
    """Rows of the bar-finding frame: the source's own up to 288, so bars are found to about 4 source rows."""
    return max(16, min(height, 288) // 2 * 2)


def _speech_track(wanted: bool) -> SpeechTrack | None:
    """The VAD, or None when it is not wanted or cannot load here (speech then stays unknown, with a warning)."""
    if not wanted:
        return None
    try:
        return SpeechTrack()
    except (ImportError, OSError, RuntimeError) as exc:
        log.warning("voice activity detection unavailable (%s): boundaries ignore speech", exc)
        return None


class _Pass:
    """State of one decode pass; `run` demuxes every stream it needs once."""

    def __init__(
        self,
        container: av.container.InputContainer,
        settings: SplitSettings,
        listen: bool,
        intermediate: Path | None,
    ) -> None:
        self.settings = settings
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"  # frame + slice threads, as the ffmpeg CLI decodes
        # more frames in flight than FFmpeg's automatic cores + 1: the decoder keeps working while this thread
        # computes features and writes the intermediate, instead of waiting for it
        self.video.codec_context.thread_count = min(16, (os.cpu_count() or 1) + 3)
        self.origin = (container.start_time or 0) / av.time_base  # ffmpeg -ss positions count from here
        rate = self.video.average_rate or self.video.guessed_rate
        self.fps = float(rate) if rate else 0.0
        ctx = self.video.codec_context
        self.sar = Fraction(self.video.sample_aspect_ratio or ctx.sample_aspect_ratio or 1) or Fraction(1)
        self.size = analysis_size(ctx.width, ctx.height, self.sar, settings.shots.analysis_width)
        self.features = FeatureBuilder(settings.proxy.bar_luma, (self.size[0], tall_height(ctx.height)))
        self.bgr_scaler = VideoReformatter()
        shots: ShotSettings = settings.shots
        self.feeder = SceneDetectFeeder(shots, self.fps) if shots.detector != "v2s" else None
        audio = container.streams.audio[0] if container.streams.audio else None
        self.audio = audio if listen and settings.speech.vad != "none" else None
        self.track, self.notes = _speech_track(self.audio is not None), []
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        wanted = settings.speech.subtitles
        self.subtitles = [
            s for s in container.streams.subtitles if wanted and s.codec_context.name in TEXT_SUBTITLES
        ]
        self.spans: list[Span] = []
        self.errors, self.first_error, self.interlaced, self.rotation = 0, "", 0, 0
        self.last_time = -1.0
        self.writer = (
            IntermediateWriter(intermediate, self.video, self.sar, settings.proxy, self.origin)
            if intermediate is not None
            else None
        )

    def run(self, container: av.container.InputContainer) -> None:
        streams = [self.video, *([self.audio] if self.audio is not None else []), *self.subtitles]
        for packet in self._packets(container, streams):
            kind = packet.stream.type
            if kind == "subtitle":
                self._subtitle(packet)
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:  # a bad packet: counted, and judged by the frame check
                if kind == "video":
                    self.errors += 1
                    self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
                continue
            for frame in frames:
                if kind == "video":
                    self._video(frame)
                else:
                    self._audio(frame)
        if self.track is not None:
            for chunk in self.resampler.resample(None):
                self.track.feed(chunk.to_ndarray(), None)

    def finish_speech(self) -> SpeechCurve:
        """The VAD's curve; a VAD that failed leaves the speech unknown (noted), it does not fail the video."""
        if self.track is None:
            return empty_curve()
        try:
            return self.track.finish()
        except RuntimeError as exc:
            log.warning("%s", exc)
            self.notes.append(str(exc))
            return empty_curve()

    def _packets(self, container: av.container.InputContainer, streams: list) -> Iterator[av.Packet]:
        """Packets of the streams, reading on past a demuxer error (MPEG-TS returns EAGAIN while it resyncs after
        damaged bytes; PyAV's demux() then stops as if the file had ended). Errors count for the frame check."""
        failures = 0
        while True:
            try:
                for packet in container.demux(*streams):
                    failures = 0
                    yield packet
                return
            except av.error.FFmpegError as exc:
                self.errors += 1
                self.first_error = self.first_error or f"demuxer: {type(exc).__name__}: {exc}"
                failures += 1
                if failures > 1000:  # no packet since: give up; check_frames says what is missing
                    return

    def _video(self, frame: av.VideoFrame) -> None:
        t = frame.time
        t = (t - self.origin) if t is not None else self.last_time + 1 / (self.fps or 25.0)
        t = max(t, self.last_time + 1e-6)  # decoders emit presentation order; broken stamps stay monotonic
        self.last_time = t
        if not len(self.features):
            self.rotation = int(getattr(frame, "rotation", 0) or 0)
        self.interlaced += bool(frame.interlaced_frame)
        self.features.add_frame(t, frame)
        if self.writer is not None:
            self.writer.add(frame, t)
        if self.feeder is not None:
            w, h = self.size
            bgr = self.bgr_scaler.reformat(frame, width=w, height=h, format="bgr24", threads=1)
            self.feeder.add(bgr.to_ndarray())

    def _audio(self, frame: av.AudioFrame) -> None:
        start = frame.time - self.origin if frame.time is not None else None
        for chunk in self.resampler.resample(frame):
            self.track.feed(chunk.to_ndarray(), start)

    def _subtitle(self, packet: av.Packet) -> None:
        if packet.pts is None or packet.time_base is None or not packet.size:
            return
        start = float(packet.pts * packet.time_base) - self.origin
        end = start + float((packet.duration or 0) * packet.time_base)
        if end > start:
            self.spans.append((start, end))


def analyse(
    path: Path,
    settings: SplitSettings,
    *,
    name: str | None = None,
    listen: bool = True,
    intermediate: Path | None = None,
) -> Analysis:
    """Decode `path` once; raises MediaError naming the file when it cannot be decoded or frames are missing.
    `intermediate`: where to write the whole video at proxy size from the same decode (see intermediate.py)."""
    label = name or str(path)
    whole = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{label}: no video stream")
            state = _Pass(container, settings, listen, intermediate)
            try:
                state.run(container)
                duration = _video_duration(container, state.video)
            finally:
                speech = state.finish_speech()  # the VAD thread ends whatever happened to the decode
                whole = state.writer.finish() if state.writer is not None else None
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{label}: cannot be decoded ({type(exc).__name__}: {exc})") from None
    features = state.features.build()
    notes = check_frames(label, features, state.fps, duration, state, settings.shots) + state.notes
    ctx = state.video.codec_context
    return Analysis(
        features=features,
        fps=state.fps,
        width=ctx.width,
        height=ctx.height,
        sar=state.sar,
        rotation=state.rotation,
        interlaced=state.interlaced > 0.1 * max(1, len(features)),
        crop=letterbox(features, ctx.width, ctx.height, settings.proxy) if not state.rotation else None,
        speech=speech,
        subtitles=merge_spans(state.spans),
        external_cuts=state.feeder.finish() if state.feeder is not None else None,
        decode_errors=state.errors,
        notes=notes,
        intermediate=whole,
    )


def _video_duration(container: av.container.InputContainer, video: av.VideoStream) -> float:
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    return (container.duration or 0) / av.time_base


def check_frames(
    label: str, features: Features, fps: float, duration: float, state: _Pass, settings: ShotSettings
) -> list[str]:
    """Fail when frames are missing: none at all, fewer than the rate promises over the time the decoded frames
    span, or a stream that stops early with decoder errors. A video track that simply ends before the audio
    (no errors, no holes) is noted, not failed."""
    count, limit = len(features), settings.max_missing_fraction
    why = f"; first decoder error: {state.first_error}" if state.first_error else ""
    codec = state.video.codec_context.name
    if count == 0:
        raise MediaError(f"{label}: no video frame could be decoded ({codec}){why}")
    if fps <= 0:
        return ["frame rate unknown: frame count not checked"]
    covered = float(features.times[-1] - features.times[0]) + 1 / fps
    expected = round(max(covered, 0) * fps)
    if count < expected * (1 - limit) - 3:
        missing = expected - count
        raise MediaError(
            f"{label}: only {count} of ~{expected} video frames decoded ({codec}, {100 * missing / expected:.0f}% "
            f"missing between {features.times[0]:.1f} s and {features.times[-1]:.1f} s){why}"
        )
    end = float(features.times[-1]) + 1 / fps
    if duration and end < duration * (1 - limit) - 1:
        if state.errors:
            raise MediaError(
                f"{label}: decoding stopped at {end:.1f} s of {duration:.1f} s ({codec}, "
                f"{state.errors} packets failed){why}"
            )
        note = f"video frames end at {end:.1f} s of {duration:.1f} s (shorter video track, no decoder error)"
        log.warning("%s: %s", label, note)
        return [note]
    return []


def letterbox(features: Features, width: int, height: int, proxy: ProxySettings) -> Crop | None:
    """The picture inside black bars: analysis rows/columns that held a bright pixel in more than 1% of the
    frames (a flash or a caption in a bar is not content), scaled back to coded pixels, even, kept only when a bar
    is at least `min_bar_fraction` of the picture."""
    n = features.bar_frames
    rows = np.flatnonzero(features.bright_rows > max(1, 0.01 * n))
    cols = np.flatnonzero(features.bright_cols > max(1, 0.01 * n))
    if not len(rows) or not len(cols):
        return None  # an all-black picture has no content to keep
    y0, y1 = _edges(rows, len(features.bright_rows), height, proxy.min_bar_fraction)
    x0, x1 = _edges(cols, len(features.bright_cols), width, proxy.min_bar_fraction)
    if (x0, y0, x1, y1) == (0, 0, width, height):
        return None
    return Crop(x=x0, y=y0, width=x1 - x0, height=y1 - y0)


def _edges(content: np.ndarray, analysis: int, coded: int, min_fraction: float) -> tuple[int, int]:
    scale = coded / analysis
    first, last = int(content[0]), int(content[-1]) + 1
    lo = int(first * scale) // 2 * 2 if first / analysis >= min_fraction else 0
    hi = -(-int(np.ceil(last * scale)) // 2) * 2 if (analysis - last) / analysis >= min_fraction else coded
    return lo, min(hi, coded)
