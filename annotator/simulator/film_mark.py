"""The film mark: every frame of a rendered film says which moment of the film it is, in a strip of cells.

The simulator must learn what a request shows from the pictures it receives, never from our own metadata, so
the synthetic film carries its time in the picture itself: a band across the top, 32 cells wide, each cell grey
(0) or white (1):

    [1 0] time in centiseconds (20 bits, Gray code, low bit first) | scene mod 64 (6 bits) | 2 parity bits | [0 1]

The band is 1/16 of the picture's height and the cells are flat, so the mark survives what the engine does to a
picture: scaling to proxy size, letterbox cropping (the band lies inside the picture and no row of it is dark
enough to pass for a bar), deinterlacing, rotation (the reader tries the four orientations), x264/MPEG-4 at
proxy quality, sampling to a few frames a second and JPEG frames. A reader checks both sync pairs and the
parities, so a frame without the mark (or upside down) is never misread as a time.

The static cells (sync, scene) are drawn per scene chain; the time and parity cells after the scenes are
joined, where `t` is the film's own time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CELLS = 32
TIME_BITS = 20  # centiseconds: 2.9 h
SCENE_BITS = 6
TIME_AT, SCENE_AT, PARITY_AT = 2, 22, 28
# mid-contrast cells: read without doubt after any proxy encode, yet too faint to pass for a cut to a detector
GREY, WHITE = "0x606060", "0xc8c8c8"


def band_height(frame_height: int) -> int:
    return max(6, round(frame_height / 16) // 2 * 2)


def _cell(i: int, width: int, band: int) -> tuple[int, int]:
    """(x, w) of cell `i` on a picture `width` wide."""
    x0, x1 = round(i * width / CELLS), round((i + 1) * width / CELLS)
    return x0, x1 - x0


def _box(i: int, width: int, band: int, colour: str, enable: str | None = None) -> str:
    x, w = _cell(i, width, band)
    box = f"drawbox=x={x}:y=0:w={w}:h={band}:color={colour}:t=fill"
    return box + (f":enable='{enable}'" if enable else "")


def scene_filters(scene_index: int, width: int, height: int) -> list[str]:
    """The band with its sync cells and the scene's cells, for one scene's chain."""
    band = band_height(height)
    filters = [f"drawbox=x=0:y=0:w={width}:h={band}:color={GREY}:t=fill"]
    filters += [_box(i, width, band, WHITE) for i in (0, CELLS - 1)]  # [1 0] … [0 1]
    code = scene_index % (1 << SCENE_BITS)
    filters += [_box(SCENE_AT + k, width, band, WHITE) for k in range(SCENE_BITS) if code >> k & 1]
    return filters


def _bit(k: int) -> str:
    """Bit k of the time's Gray code (one cell flips per centisecond, so the band barely moves frame to frame)."""
    binary = [f"floor((t*100+0.5)/{1 << j})" for j in (k, k + 1)]
    return f"mod({binary[0]}+{binary[1]},2)"


def time_filters(width: int, height: int) -> list[str]:
    """The time and parity cells, each lit while its bit of the film's time is 1 (after the concat)."""
    band = band_height(height)
    filters = [_box(TIME_AT + k, width, band, WHITE, f"eq({_bit(k)},1)") for k in range(TIME_BITS)]
    for p in range(2):
        total = "+".join(_bit(k) for k in range(p, TIME_BITS, 2))
        filters.append(_box(PARITY_AT + p, width, band, WHITE, f"eq(mod({total},2),1)"))
    return filters


@dataclass(frozen=True)
class Mark:
    time_s: float
    scene: int  # the scene's index mod 64


def _read_upright(luma: np.ndarray) -> Mark | None:
    height, width = luma.shape
    band = band_height(height)
    if band < 4 or width < CELLS * 3:
        return None
    rows = luma[band // 4 : band - band // 4].astype(np.float32)
    levels = []
    for i in range(CELLS):
        x, w = _cell(i, width, band)
        levels.append(float(rows[:, x + w // 4 : x + w - w // 4].mean()))
    white, grey = (levels[0] + levels[-1]) / 2, (levels[1] + levels[-2]) / 2
    if white - grey < 40 or grey < 40:  # no band here: flat picture, a dark bar, or the wrong side
        return None
    bits = [int(level > (white + grey) / 2) for level in levels]
    gray = sum(bits[TIME_AT + k] << k for k in range(TIME_BITS))
    value, shift = gray, gray >> 1
    while shift:
        value, shift = value ^ shift, shift >> 1
    parity = [sum(bits[TIME_AT + k] for k in range(p, TIME_BITS, 2)) % 2 for p in range(2)]
    if parity != bits[PARITY_AT : PARITY_AT + 2]:
        return None
    scene = sum(bits[SCENE_AT + k] << k for k in range(SCENE_BITS))
    return Mark(value / 100, scene)


def read_mark(luma: np.ndarray, turns: int | None = None) -> tuple[Mark, int] | None:
    """The mark of one picture's luma plane (H×W) and the quarter turns that put it upright; None when the
    picture carries none. `turns`: try that orientation first (a video keeps one)."""
    order = [0, 1, 3, 2] if turns is None else [turns, *(t for t in (0, 1, 3, 2) if t != turns)]
    for quarter in order:
        mark = _read_upright(np.rot90(luma, quarter) if quarter else luma)
        if mark is not None:
            return mark, quarter
    return None
