"""The quality gates hold a script to the video that was actually sent, not to the segment's nominal span."""

from __future__ import annotations

from annotator.schemas import Script
from annotator.stages.quality import QualityGates


def _script(times: list[float]) -> Script:
    events = [{"timestamp": t, "character": "char_001", "action": f"walks {t:.0f} steps"} for t in times]
    return Script.model_validate({"script": [{"scene_id": 1, "location": "pier", "events": events}]})


def test_a_video_shorter_than_its_segment_is_a_problem_and_bounds_the_events():
    script = _script([2.0, 10.0, 25.0, 50.0])
    assert QualityGates().check(script, 60.0, lambda _: True, shown_s=59.9) == []
    problems = QualityGates().check(script, 60.0, lambda _: True, shown_s=28.0)
    assert problems[0] == "the video sent shows 28.0s of the segment's 60.0s"
    assert "event 4 at 50s is after the clip's end (28s)" in problems
    assert QualityGates().check(_script([]), 60.0, lambda _: True, shown_s=10.0) == [
        "the video sent shows 10.0s of the segment's 60.0s",
        "the script has no events",
    ]
