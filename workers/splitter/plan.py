"""Segments of at most `max_segment_s`, cut where no line of dialogue is interrupted.

From each segment start the boundary is chosen in the window [start + min_segment_s, start + max_segment_s]:
1. a shot cut outside every dialogue span (VAD lines and subtitle cues), preferring the window's later part
   (segments near their maximum length), then scene changes over cuts inside a scene, then the latest;
2. with no such cut and no dialogue anywhere in the video, the latest cut in the window, else the window's end;
3. else a pause, in the later part first: the middle of a pause between dialogue spans (the latest one wide
   enough), else the middle of the widest run of VAD windows below the speech threshold. Spans bridge pauses
   shorter than SpeechSettings.min_gap_s, so in fast dialogue the VAD's own windows are the only pauses left;
   they are measured at its resolution (32 ms), not on a coarser grid or a smoothed level, which would put the
   boundary beside a 0.2 s pause instead of in it;
4. with speech in every VAD window, the middle of the window of least speech (in the later part first); with no
   VAD curve (dialogue known from subtitles only), the latest cut in the later part, else the window's end.
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
    threshold: float = 0.5  # VAD probability below which a window is a pause (SpeechSettings.threshold)

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
    preferred = max(lo, start + max_segment_s * settings.preferred_from)
    window = [c for c in bounds if lo <= c.time_s <= hi]
    free = [c for c in window if not dialogue.inside(c.time_s)]
    if free:
        return max(free, key=lambda c: (c.time_s >= preferred, c.scene, c.time_s)).time_s
    if not dialogue.spans:  # nobody speaks: nothing to protect
        return window[-1].time_s if window else hi
    for part in (preferred, lo):  # the later part first: a boundary there keeps the segment near its maximum
        pauses = [(a, b) for a, b in dialogue.pauses(part, hi) if b - a >= settings.min_gap_s]
        if pauses:
            # a pause of a second or more lies between lines; shorter ones may be a breath inside one
            a, b = max(pauses, key=lambda p: (p[1] - p[0] >= 1.0, p[1]))
            return (a + b) / 2
        if (quiet := _widest_quiet_run(part, hi, dialogue)) is not None:
            return quiet
    return _least_speech(lo, hi, preferred, window, dialogue)


def _widest_quiet_run(lo: float, hi: float, dialogue: Dialogue) -> float | None:
    """The middle of the widest run of VAD windows below the threshold within [lo, hi] (the quieter, then the
    later, of equally wide runs), or None when no window is below it."""
    curve = dialogue.curve
    if curve is None:
        return None
    runs = curve.quiet_runs(lo, hi, dialogue.threshold)
    if not runs:
        return None
    a, b = max(runs, key=lambda r: (r[1] - r[0], -float(curve.probs[r[0] : r[1]].mean()), r[0]))
    return (curve.time(a) + curve.time(b)) / 2


def _least_speech(lo: float, hi: float, preferred: float, window: list[Cut], dialogue: Dialogue) -> float:
    """Speech in every VAD window: the middle of the window of least speech, in the later part first (the latest
    of equals); with no VAD curve over the window, the latest cut in its later part, else its end."""
    curve = dialogue.curve
    for part in (preferred, lo):
        first, stop = curve.indices(part, hi) if curve is not None else (0, 0)
        if stop > first:
            probs = curve.probs[first:stop]
            k = first + len(probs) - 1 - int(np.argmin(probs[::-1]))
            return curve.time(k) + curve.hop_s / 2
    return max((c.time_s for c in window if c.time_s >= preferred), default=hi)


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
