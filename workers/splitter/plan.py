"""Segments of at most `max_segment_s`, cut where no line of dialogue is interrupted.

From each segment start the boundary is chosen in the window [start + min_segment_s, start + max_segment_s]:
1. a shot cut outside every dialogue span (VAD lines and subtitle cues), preferring the window's later part
   (segments near their maximum length), then scene changes over cuts inside a scene, then the latest;
2. with no such cut, the middle of a pause in the dialogue (the latest one that is wide enough, in the later part
   first): a boundary without a shot cut still cuts no line;
3. with speech throughout, the point of least speech (lowest VAD level over ±0.5 s); without any speech
   information, the latest cut in the window, else the window's end.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from workers.splitter.settings import PlanSettings
from workers.splitter.shots import Cut
from workers.splitter.speech import Span, SpeechCurve, merge_spans


class SegmentPlan(BaseModel):
    idx: int
    start_s: float
    end_s: float


@dataclass
class Dialogue:
    spans: list[Span]  # merged, sorted
    curve: SpeechCurve | None = None

    def __post_init__(self) -> None:
        self.spans = merge_spans(self.spans)
        self._starts = [a for a, _ in self.spans]

    def inside(self, t: float) -> bool:
        i = bisect.bisect_right(self._starts, t) - 1
        return i >= 0 and self.spans[i][0] < t < self.spans[i][1]

    def pauses(self, lo: float, hi: float) -> list[Span]:
        """The parts of [lo, hi] outside every span."""
        out, cursor = [], lo
        for a, b in self.spans:
            if b <= cursor:
                continue
            if a >= hi:
                break
            if a > cursor:
                out.append((cursor, min(a, hi)))
            cursor = max(cursor, b)
        if cursor < hi:
            out.append((cursor, hi))
        return out


def plan(
    duration_s: float, cuts: Sequence[Cut], max_segment_s: float, dialogue: Dialogue, settings: PlanSettings
) -> list[SegmentPlan]:
    bounds = sorted((c for c in cuts if 0 < c.time_s < duration_s), key=lambda c: c.time_s)
    plans: list[SegmentPlan] = []
    start = 0.0
    while duration_s - start > max_segment_s:
        end = _boundary(start, bounds, max_segment_s, dialogue, settings)
        plans.append(SegmentPlan(idx=len(plans) + 1, start_s=round(start, 3), end_s=round(end, 3)))
        start = end
    if duration_s - start > 0.5 or not plans:
        plans.append(SegmentPlan(idx=len(plans) + 1, start_s=round(start, 3), end_s=round(duration_s, 3)))
    else:  # a sliver at the end joins the previous segment
        plans[-1] = plans[-1].model_copy(update={"end_s": round(duration_s, 3)})
    return plans


def _boundary(
    start: float, bounds: list[Cut], max_segment_s: float, dialogue: Dialogue, settings: PlanSettings
) -> float:
    lo, hi = start + min(settings.min_segment_s, max_segment_s / 2), start + max_segment_s
    preferred = start + max_segment_s * settings.preferred_from
    window = [c for c in bounds if lo <= c.time_s <= hi]
    free = [c for c in window if not dialogue.inside(c.time_s)]
    if free:
        return max(free, key=lambda c: (c.time_s >= preferred, c.scene, c.time_s)).time_s
    pauses = [(a, b) for a, b in dialogue.pauses(lo, hi) if b - a >= settings.min_gap_s]
    if dialogue.spans and pauses:
        # a pause of a second or more lies between lines; shorter ones may be a breath inside one
        a, b = max(pauses, key=lambda p: ((p[0] + p[1]) / 2 >= preferred, p[1] - p[0] >= 1.0, p[1]))
        return (a + b) / 2
    if not dialogue.spans and (dialogue.curve is None or not len(dialogue.curve.probs)):
        return window[-1].time_s if window else hi
    return _least_speech(lo, hi, preferred, window, dialogue)


def _least_speech(lo: float, hi: float, preferred: float, window: list[Cut], dialogue: Dialogue) -> float:
    """Continuous speech: the time of lowest VAD level, shot cuts and the later part of the window winning ties."""
    grid = np.arange(lo, hi + 1e-9, 0.1)
    times = np.concatenate([grid, [c.time_s for c in window]])
    curve = dialogue.curve
    level = curve.level(times) if curve is not None and len(curve.probs) else np.zeros(len(times))
    cost = level - 0.02 * (times >= preferred) - 0.01 * (np.arange(len(times)) >= len(grid))
    best = np.flatnonzero(cost <= cost.min() + 1e-9)
    return float(times[best].max())


def plan_segments(
    duration_s: float,
    cuts: Sequence[float],
    max_segment_s: float,
    silences: Sequence[Span] = (),
    *,
    min_segment_s: float = 5.0,
) -> list[SegmentPlan]:
    """The old interface: cut times and silent spans (sound is assumed everywhere else when silences are
    given; with none, nothing is known about sound and the latest shot cut in reach wins)."""
    spans = Dialogue(list(silences)).pauses(0.0, duration_s) if silences else []
    dialogue = Dialogue(spans)
    settings = PlanSettings(min_segment_s=min_segment_s)
    return plan(duration_s, [Cut(float(t), "hard", 1.0) for t in cuts], max_segment_s, dialogue, settings)
