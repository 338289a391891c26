"""Boundary choice: shot cuts outside dialogue first (scene changes over cuts inside a scene), then the middle of a
pause (between dialogue spans, else the widest run of quiet VAD windows), then the window of least speech; and shots
grouped into scenes."""

from __future__ import annotations

import numpy as np

from workers.splitter.features import Features
from workers.splitter.plan import Dialogue, plan
from workers.splitter.settings import PlanSettings, ShotSettings
from workers.splitter.shots import Cut, mark_scenes
from workers.splitter.speech import SpeechCurve


def _ends(plans) -> list[float]:
    return [p.end_s for p in plans]


def test_a_cut_inside_a_line_loses_to_an_earlier_one_in_a_pause():
    cuts = [Cut(40.0, "hard", 1.0), Cut(55.0, "hard", 1.0)]
    talk = Dialogue([(0.0, 39.0), (41.0, 100.0)])
    assert _ends(plan(100, cuts, 60, talk, PlanSettings()))[0] == 40.0


def test_a_scene_change_wins_over_a_later_cut_inside_a_scene():
    cuts = [Cut(35.0, "hard", 1.0, scene=True), Cut(50.0, "hard", 1.0, scene=False)]
    assert _ends(plan(100, cuts, 60, Dialogue([]), PlanSettings()))[0] == 35.0
    # …but only inside the window's preferred (later) part: an early scene change does not halve the segment
    cuts = [Cut(12.0, "hard", 1.0, scene=True), Cut(50.0, "hard", 1.0, scene=False)]
    assert _ends(plan(100, cuts, 60, Dialogue([]), PlanSettings()))[0] == 50.0


def test_without_a_free_cut_the_boundary_takes_the_middle_of_a_wide_pause():
    lines = [(0.0, 44.0), (44.4, 50.0), (52.0, 59.5), (59.8, 100.0)]  # 0.3-0.4 s breaths, one 2 s pause
    cuts = [Cut(58.0, "hard", 1.0)]  # a cut mid-line does not count
    assert _ends(plan(100, cuts, 60, Dialogue(lines), PlanSettings()))[0] == 51.0


HOP = 0.032  # Silero's window at 16 kHz


def _curve(level: float, quiet: list[tuple[float, float, float]], duration: float = 100.0) -> SpeechCurve:
    """Speech probability `level` everywhere but (from s, to s, probability) runs, whole windows each."""
    probs = np.full(round(duration / HOP), level, np.float32)
    for a, b, p in quiet:
        probs[round(a / HOP) : round(b / HOP)] = p
    return SpeechCurve(0.0, HOP, probs)


def test_continuous_speech_is_cut_where_it_is_quietest():
    curve = _curve(0.95, [(47.0, 48.0, 0.2)])  # a softer moment, still above nothing
    end = _ends(plan(100, [], 60, Dialogue([(0.0, 100.0)], curve), PlanSettings()))[0]
    assert 47.0 <= end <= 48.0


def test_fast_dialogue_is_cut_in_the_middle_of_the_widest_short_pause_of_the_later_part():
    # pauses of 0.2-0.35 s (spans bridge them): the widest of the later part wins over a wider one before it
    # and over later, narrower ones, and the boundary is its middle at the VAD's resolution
    pauses = [
        (12.0, 12.8, 0.05),
        (33.6, 33.8, 0.1),
        (41.6, 41.952, 0.1),
        (52.0, 52.224, 0.05),
        (57.6, 57.8, 0.1),
    ]
    curve = _curve(0.95, pauses)
    end = _ends(plan(100, [], 60, Dialogue([(0.0, 100.0)], curve), PlanSettings()))[0]
    assert end == 41.776
    # with two equally wide, the quieter wins
    curve = _curve(0.95, [(41.6, 41.952, 0.3), (52.0, 52.352, 0.05)])
    assert _ends(plan(100, [], 60, Dialogue([(0.0, 100.0)], curve), PlanSettings()))[0] == 52.176


def test_an_early_pause_is_taken_only_when_the_later_part_has_none():
    curve = _curve(0.95, [(12.0, 12.32, 0.05)])
    assert _ends(plan(100, [], 60, Dialogue([(0.0, 100.0)], curve), PlanSettings()))[0] == 12.16


def test_speech_above_the_threshold_everywhere_is_cut_in_its_least_speech_window():
    curve = _curve(0.95, [(20.0, 20.032, 0.55), (47.008, 47.04, 0.6)])  # the later part's softest window wins
    end = _ends(plan(100, [], 60, Dialogue([(0.0, 100.0)], curve), PlanSettings()))[0]
    assert end == 47.024


def _film(looks: list[int], frames: int = 10) -> Features:
    """Shots of flat grey levels `looks`, `frames` each, at 10 fps."""
    thumbs = np.concatenate([np.full((frames, 18, 32), v, np.uint8) for v in looks])
    chroma = np.full((len(thumbs), 2, 9, 16), 128, np.uint8)
    times = np.arange(len(thumbs)) / 10.0
    return Features(times, thumbs, chroma, np.zeros(1, np.int32), np.zeros(1, np.int32), 0)


def test_shot_reverse_shot_is_one_scene_and_a_new_place_is_another():
    features = _film([20, 80, 20, 80, 160, 230, 160])  # A B A B | C D C
    cuts = [Cut(float(t), "hard", 1.0) for t in (1, 2, 3, 4, 5, 6)]
    marked = mark_scenes(cuts, features, ShotSettings(scene_score=20.0, scene_lookback=2))
    assert [c.scene for c in marked] == [False, False, False, True, False, False]
