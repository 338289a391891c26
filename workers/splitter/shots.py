"""Shot cuts from the per-frame features, and shots grouped into scenes.

Three kinds of candidate, each put through the same filters:
- hard cuts: a frame-to-frame distance above an absolute floor that stands out from its neighbours (the floor keeps
  compression pulses out: a keyframe refreshing an unchanged picture moves block means by a point or two);
- gradual transitions (dissolves, fades): pictures a window apart on both sides of the centre differ while each side
  is steady (camera motion changes both sides alike, a transition only the middle);
- fades through black: the centre of a run of flat black frames.
A candidate counts only if the picture after it differs from the one before it, `persist_s` on either side: a
flash (or a keyframe pulse) returns to the picture it interrupted and is no cut. Of two cuts closer than
`min_shot_s`, the stronger is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

import numpy as np

from workers.splitter.features import Features, picture_distance
from workers.splitter.settings import ShotSettings


@dataclass
class Cut:
    time_s: float  # the first frame of the new shot (for a transition: its centre)
    kind: str  # hard | gradual | black
    strength: float  # how far past its threshold, 1.0 = just at it
    scene: bool = True  # the shots on either side belong to different scenes


def find_cuts(
    features: Features, fps: float, settings: ShotSettings, external: list[int] | None = None
) -> list[Cut]:
    """Cuts in time order. `external`: frame indices proposed by a PySceneDetect detector instead of the hard-cut
    candidates of this module (the gradual, black, persistence and minimum-length rules still apply)."""
    n = len(features)
    if n < 3:
        return []
    fps = fps if fps > 0 else _measured_fps(features)
    hists = features.histograms()
    idx = np.arange(n)
    step = np.zeros(n)
    step[1:] = features.distance(idx[:-1], idx[1:], hists)
    if external is None:
        hard = _hard_candidates(step, settings)
    else:
        hard = np.array(sorted({i for i in external if 0 < i < n}), dtype=np.int64)
    hard = _persistent(features, hists, hard, step, fps, settings)
    cuts = [Cut(float(features.times[i]), "hard", float(step[i] / settings.cut_score)) for i in hard]
    cuts += _gradual(features, hists, fps, settings, hard)
    cuts += _black(features, fps, settings)
    return _thin(cuts, settings.min_shot_s)


def _measured_fps(features: Features) -> float:
    span = float(features.times[-1] - features.times[0])
    return (len(features) - 1) / span if span > 0 else 25.0


def _hard_candidates(step: np.ndarray, settings: ShotSettings) -> np.ndarray:
    """Frames whose change from the previous frame clears the floor and `cut_ratio` × the mean change of their
    `neighbours` frames on each side (fast motion raises the neighbours too, a cut only itself)."""
    w = settings.neighbours
    padded = np.pad(step, w, mode="edge")
    kernel = np.ones(2 * w + 1)
    kernel[w] = 0
    around = np.convolve(padded, kernel, mode="valid") / (2 * w)
    hit = (step >= settings.cut_score) & (step >= settings.cut_ratio * around)
    hit[0] = False
    return np.flatnonzero(hit)


def _persistent(
    features: Features,
    hists: np.ndarray,
    frames: np.ndarray,
    step: np.ndarray,
    fps: float,
    settings: ShotSettings,
) -> np.ndarray:
    """Keep the cut frames i that are a lasting change and the whole of it, with k = persist_s of frames:
    - the new picture still differs from the old one k frames on, both ways: min(D(i-1, i+k), D(i-1-k, i)) is at
      least `persist_ratio` of the step (and `persist_score`). A flash shorter than k frames fails on its first
      frame (the picture after it is the one before it) and on its last (the picture before it is the one after);
    - the step is at least `dominance` of the change across D(i-1-k, i+k): a jerky fade or a fast pan
      changes as much before and after the step as at it, a cut changes at it."""
    if not len(frames):
        return frames
    n = len(features)
    k = max(2, round(settings.persist_s * fps))
    before, ahead, behind = (
        np.clip(frames - 1, 0, n - 1),
        np.clip(frames + k, 0, n - 1),
        np.clip(frames - 1 - k, 0, n - 1),
    )
    lasting = np.minimum(features.distance(before, ahead, hists), features.distance(behind, frames, hists))
    across = features.distance(behind, ahead, hists)
    jump = step[frames]
    keep = (lasting >= np.maximum(settings.persist_score, settings.persist_ratio * jump)) & (
        jump >= settings.dominance * across
    )
    return frames[keep]


def _gradual(
    features: Features, hists: np.ndarray, fps: float, settings: ShotSettings, hard: np.ndarray
) -> list[Cut]:
    """Stretches where D(i-W, i+W) is high and `gradual_ratio` times what either side changes, D(i-3W, i-W)
    and D(i+W, i+3W) (a pan changes both sides as much as the middle), cut at the frame halfway between the two
    shots. A stretch around a hard cut is that cut, not a transition."""
    n = len(features)
    w = max(2, round(settings.gradual_window_s * fps))
    if n <= 2 * w:
        return []
    centre = np.arange(w, n - w)
    across = features.distance(centre - w, centre + w, hists)
    left = features.distance(np.clip(centre - 3 * w, 0, n - 1), centre - w, hists)
    right = features.distance(centre + w, np.clip(centre + 3 * w, 0, n - 1), hists)
    hit = (across >= settings.gradual_score) & (across >= settings.gradual_ratio * np.maximum(left, right))
    cuts = []
    for start, stop in _runs(hit):
        lo, hi = centre[start], centre[stop - 1]
        if len(hard) and np.any((hard >= lo - w) & (hard <= hi + w)):
            continue
        weights = across[start:stop]
        middle = _halfway(features, hists, lo - w, hi + w)
        if _differs(features, hists, middle, w, settings):
            cuts.append(
                Cut(float(features.times[middle]), "gradual", float(weights.max() / settings.gradual_score))
            )
    return cuts


def _halfway(features: Features, hists: np.ndarray, before: int, after: int) -> int:
    """The frame between `before` (old shot) and `after` (new shot) that looks as much like one as the other: the
    middle of a dissolve even when one shot moves (a weighted centre of the stretch drifts toward the moving one)."""
    n = len(features)
    before, after = max(0, before), min(n - 1, after)
    frames = np.arange(before + 1, after)
    if not len(frames):
        return (before + after) // 2
    old = features.distance(np.full(len(frames), before), frames, hists)
    new = features.distance(np.full(len(frames), after), frames, hists)
    return int(frames[np.argmin(np.abs(old - new))])


def _black(features: Features, fps: float, settings: ShotSettings) -> list[Cut]:
    """The centre of each run of flat black frames inside the film (a fade through black, a cut to black)."""
    n = len(features)
    flat = features.thumbs.reshape(n, -1).std(axis=1) < 6.0
    dark = (features.luma < settings.black_luma) & flat
    cuts = []
    for start, stop in _runs(dark):
        if start == 0 or stop == n:  # black leader or tail: no picture on one side to cut between
            continue
        middle = (start + stop - 1) // 2
        cuts.append(
            Cut(float(features.times[middle]), "black", 10.0)
        )  # exact: it wins over a transition near it
    return cuts


def _differs(features: Features, hists: np.ndarray, i: int, w: int, settings: ShotSettings) -> bool:
    n = len(features)
    a, b = np.array([max(0, i - 2 * w)]), np.array([min(n - 1, i + 2 * w)])
    return bool(features.distance(a, b, hists)[0] >= settings.persist_score)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _thin(cuts: list[Cut], min_shot_s: float) -> list[Cut]:
    """Strongest first: a cut closer than min_shot_s to one already kept is dropped."""
    kept: list[Cut] = []
    for cut in sorted(cuts, key=lambda c: -c.strength):
        if all(abs(cut.time_s - other.time_s) >= min_shot_s for other in kept):
            kept.append(cut)
    return sorted(kept, key=lambda c: c.time_s)


def mark_scenes(cuts: list[Cut], features: Features, settings: ShotSettings) -> list[Cut]:
    """Flag the cuts that change scene. A cut stays inside a scene when some shot among the `scene_lookback`
    before it looks like some shot among those after it (shot / reverse shot, cutaways and back)."""
    if not cuts or not len(features):
        return cuts
    bounds = np.searchsorted(features.times, [c.time_s for c in cuts])
    edges = [0, *bounds.tolist(), len(features)]
    looks = [features.mean_picture(a, max(b, a + 1)) for a, b in pairwise(edges)]
    out = []
    for j, cut in enumerate(cuts):  # cut j sits between shot j and shot j + 1
        before = range(max(0, j - settings.scene_lookback + 1), j + 1)
        after = range(j + 1, min(len(looks), j + 1 + settings.scene_lookback))
        alike = any(
            picture_distance(looks[a], looks[b]) < settings.scene_score for a in before for b in after
        )
        out.append(Cut(cut.time_s, cut.kind, cut.strength, scene=not alike))
    return out


class SceneDetectFeeder:
    """Feeds the decoded frames (BGR, analysis size) to a PySceneDetect detector one by one, so it sees exactly
    the frames PyAV decoded; its cuts (frame indices) go to `find_cuts(external=…)`."""

    def __init__(self, settings: ShotSettings, fps: float) -> None:
        import scenedetect
        from scenedetect import FrameTimecode

        kinds = {
            "adaptive": scenedetect.AdaptiveDetector,
            "content": scenedetect.ContentDetector,
            "histogram": scenedetect.HistogramDetector,
            "hash": scenedetect.HashDetector,
        }
        self._detector = kinds[settings.detector](**settings.scenedetect_options)
        self._timecode = FrameTimecode
        self._rate = Fraction(fps if fps > 0 else 25.0).limit_denominator(1001000)
        self._index = 0
        self.cuts: list[int] = []

    def add(self, bgr: np.ndarray) -> None:
        found = self._detector.process_frame(self._timecode(self._index, self._rate), bgr)
        self.cuts += [c.frame_num for c in found]
        self._index += 1

    def finish(self) -> list[int]:
        self.cuts += [
            c.frame_num for c in self._detector.post_process(self._timecode(self._index, self._rate))
        ]
        return self.cuts
