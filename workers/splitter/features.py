"""What shot detection keeps of each decoded frame: a tiny picture, its colour and its histogram.

The frames arrive scaled by swscale's area filter straight to a 32×18 thumbnail (each thumbnail pixel is the mean
of a block of the source). Block means wash out grain, noise and compression artefacts (which change at every keyframe of an unchanged
picture) while keeping composition and colour, which change at a cut. About 1 KB a frame is kept, so a two-hour film
at 30 fps needs ~220 MB: the frames themselves are never held.

The scalers run single-threaded: swscale's default slice threads cost more to wake than a 32×18 picture takes to
compute, and the decoder's own threads already fill the cores. The bar-finding frame is taken from every
`BAR_STRIDE`-th frame only: letterbox bars are a property of the whole film, not of one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

THUMB = (18, 32)  # luma blocks (rows, columns)
CHROMA = (9, 16)  # blocks of each chroma plane
BINS = 16  # luma histogram bins (of the block means, so grain does not move pixels between bins)
BAR_STRIDE = 4


class FeatureBuilder:
    """Collects the features of every frame in order; `build()` hands them over as arrays."""

    def __init__(self, bar_luma: float, bar_size: tuple[int, int], *, bar_stride: int = BAR_STRIDE) -> None:
        self.bar_luma, self.bar_size, self.bar_stride = bar_luma, bar_size, bar_stride
        # one reformatter per output size for the whole pass: frame.reformat() builds a new scaler per call
        self._thumb_scaler, self._bar_scaler = VideoReformatter(), VideoReformatter()
        self._times: list[float] = []
        self._thumbs: list[np.ndarray] = []
        self._chroma: list[np.ndarray] = []
        self._rows: np.ndarray | None = None  # per analysis row: frames in which it held a bright pixel
        self._cols: np.ndarray | None = None
        self._sampled = 0  # frames whose bars were looked at

    def add_frame(self, time_s: float, frame: av.VideoFrame) -> None:
        """Area-average the frame to THUMB (every source pixel counts, so grain and interlacing combs average out)
        and, every `bar_stride` frames, take its luma at `bar_size` (nearly full height: bars to a few rows)."""
        thumb = self._thumb_scaler.reformat(
            frame, width=THUMB[1], height=THUMB[0], format="yuv444p", interpolation="AREA", threads=1
        )
        bars = None
        if len(self._times) % self.bar_stride == 0:
            w, h = self.bar_size
            bars = self._bar_scaler.reformat(frame, width=w, height=h, format="gray", threads=1).to_ndarray()
        self.add(time_s, thumb.to_ndarray(), bars)

    def add(self, time_s: float, thumb: np.ndarray, bars: np.ndarray | None) -> None:
        """`thumb`: a (3, 18, 32) uint8 yuv444p array; `bars`: the luma for bar finding, or None (not sampled)."""
        self._times.append(time_s)
        self._thumbs.append(thumb[0])
        rows, cols = CHROMA
        self._chroma.append(thumb[1:].reshape(2, rows, 2, cols, 2).mean(axis=(2, 4)).astype(np.uint8))
        if bars is None:
            return
        self._sampled += 1
        bright = bars > self.bar_luma
        if self._rows is None or self._cols is None:
            self._rows = np.zeros(bright.shape[0], np.int32)
            self._cols = np.zeros(bright.shape[1], np.int32)
        self._rows += bright.any(axis=1)
        self._cols += bright.any(axis=0)

    def __len__(self) -> int:
        return len(self._times)

    def build(self) -> Features:
        count = len(self._times)
        thumbs = np.stack(self._thumbs) if count else np.zeros((0, *THUMB), np.uint8)
        chroma = np.stack(self._chroma) if count else np.zeros((0, 2, *CHROMA), np.uint8)
        rows = self._rows if self._rows is not None else np.zeros(0, np.int32)
        cols = self._cols if self._cols is not None else np.zeros(0, np.int32)
        return Features(np.asarray(self._times, np.float64), thumbs, chroma, rows, cols, self._sampled)


@dataclass
class Features:
    times: np.ndarray  # (n,) seconds from the start of the file
    thumbs: np.ndarray  # (n, 18, 32) uint8 luma block means
    chroma: np.ndarray  # (n, 2, 9, 16) uint8 chroma block means
    bright_rows: np.ndarray  # (rows,) frames in which each row of the tall frame held a pixel above bar_luma
    bright_cols: np.ndarray  # (W,)
    bar_frames: int  # frames the bright rows and columns were counted over

    def __len__(self) -> int:
        return len(self.times)

    @property
    def luma(self) -> np.ndarray:
        """Mean luma of each frame (0-255)."""
        return self.thumbs.reshape(len(self), -1).mean(axis=1)

    def histograms(self) -> np.ndarray:
        """(n, BINS) normalised luma histograms of the block means."""
        flat = self.thumbs.reshape(len(self), -1).astype(np.int64) * BINS // 256
        offsets = (np.arange(len(self)) * BINS)[:, None]
        counts = np.bincount((flat + offsets).ravel(), minlength=len(self) * BINS)
        return counts.reshape(len(self), BINS).astype(np.float32) / max(1, flat.shape[1])

    def distance(self, a: np.ndarray, b: np.ndarray, hists: np.ndarray | None = None) -> np.ndarray:
        """How different frames a[k] and b[k] look, 0 (same) to ~100 (unrelated), for index arrays a, b.

        The mean of three parts: luma blocks (composition), chroma blocks ×2 (chroma spans a narrower range)
        and the luma histogram's total variation (robust to motion), each scaled to 0-100."""
        hists = self.histograms() if hists is None else hists
        ta, tb = self.thumbs[a].astype(np.int16), self.thumbs[b].astype(np.int16)
        picture = np.abs(ta - tb).mean(axis=(1, 2)) * (100 / 255) * 2
        ca, cb = self.chroma[a].astype(np.int16), self.chroma[b].astype(np.int16)
        colour = np.abs(ca - cb).mean(axis=(1, 2, 3)) * (100 / 255) * 4
        histogram = np.abs(hists[a] - hists[b]).sum(axis=1) * 50
        return (np.minimum(picture, 100) + np.minimum(colour, 100) + histogram) / 3

    def mean_picture(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The average luma and chroma blocks of frames [start, stop) (a shot's look, for scene grouping)."""
        return self.thumbs[start:stop].mean(axis=0), self.chroma[start:stop].mean(axis=0)


def picture_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """`Features.distance` for two mean pictures (without the histogram part)."""
    picture = float(np.abs(a[0] - b[0]).mean()) * (100 / 255) * 2
    colour = float(np.abs(a[1] - b[1]).mean()) * (100 / 255) * 4
    return (min(picture, 100) + min(colour, 100)) / 2
