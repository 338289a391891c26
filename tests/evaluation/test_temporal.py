"""Stage 4 (tIoU hit rate), event spans, scene level, and dataset aggregation."""

from __future__ import annotations

import pytest

from evaluation import Script, evaluate, evaluate_dataset
from evaluation.alignment import Group
from evaluation.schema import Unit, script_units
from evaluation.temporal import temporal_counts, tiou


def test_tiou():
    assert tiou((0, 10), (5, 15)) == pytest.approx(1 / 3)
    assert tiou((0, 10), (10, 20)) == 0.0
    assert tiou((3, 7), (3, 7)) == 1.0
    assert tiou((5, 5), (5, 5)) == 1.0
    assert tiou((5, 5), (6, 6)) == 0.0


def test_hits_precision_recall_with_misses_and_hallucinations():
    gt = [Unit(0, 0, 10), Unit(1, 20, 30), Unit(2, 40, 50)]
    pred = [Unit(0, 2, 12), Unit(1, 26, 40), Unit(2, 60, 70), Unit(3, 80, 90)]
    groups = [
        Group((0,), (0,)),  # tIoU 8/12 = 0.667
        Group((1,), (1,)),  # tIoU 4/20 = 0.2
        Group((2,), ()),  # miss
        Group((), (2,)),  # hallucination
        Group((), (3,)),  # hallucination
    ]
    counts = temporal_counts(groups, gt, pred)
    assert {t: (c.score, c.n_pred, c.n_gt) for t, c in counts.items()} == {
        0.1: (2, 4, 3),
        0.3: (1, 4, 3),
        0.5: (1, 4, 3),
        0.7: (0, 4, 3),
    }
    assert counts[0.1].precision == 0.5 and counts[0.1].recall == pytest.approx(2 / 3)
    assert counts[0.1].f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # 4/7
    assert counts[0.3].f1 == pytest.approx(2 / 7)
    assert counts[0.7].f1 == 0.0


def test_event_spans():
    script = Script.model_validate(
        {
            "duration_s": 100,
            "script": [
                {
                    "scene_id": 1,
                    "events": [
                        {"timestamp": "00:10", "action": "a"},
                        {"timestamp": "00:10", "action": "b"},  # same time: same end as the first
                        {"timestamp": "00:15.5", "end_timestamp": "00:17", "action": "c"},  # own end
                        {"timestamp": "00:20", "action": "d"},  # last of the scene: the scene's end
                    ],
                },
                {
                    "scene_id": 2,
                    "start_timestamp": "00:30",
                    "end_timestamp": "00:50",
                    "events": [
                        {"timestamp": "00:40", "action": "e"},  # scene end_timestamp
                    ],
                },
                {"scene_id": 3, "events": [{"timestamp": "0:01:10", "action": "f"}]},  # the duration
            ],
        }
    )
    units = script_units(script)
    assert [(u.start, u.end) for u in units.events] == [
        (10, 15.5),
        (10, 15.5),
        (15.5, 17),
        (20, 30),
        (40, 50),
        (70, 100),
    ]
    assert [(u.start, u.end) for u in units.scenes] == [(10, 30), (30, 50), (70, 100)]
    # without a duration the last scene ends at its last event + the default tail (5 s)
    script.duration_s = None
    assert script_units(script).events[-1].end == 75
    assert script_units(script, default_tail_s=2).scenes[-1].end == 72


def _script(n_scenes: int = 2, shift: float = 0.0, text: str = "line") -> dict:
    scenes = []
    for s in range(n_scenes):
        base = 60 * s + shift
        scenes.append(
            {
                "scene_id": s + 1,
                "location": f"room {s}",
                "type": "INT",
                "environment": "dim light",
                "time": "night",
                "mood": "tense",
                "start_timestamp": base,
                "end_timestamp": base + 60,
                "events": [
                    {
                        "timestamp": base + 10 * k,
                        "character": "Anna",
                        "dialogue": f"{text} {s} {k}",
                        "action": "talks",
                    }
                    for k in range(3)
                ],
            }
        )
    return {"script": scenes}


def test_scene_level_fields_and_spans():
    gt = _script()
    pred = _script()
    pred["script"][1]["location"] = "room 1, by the window"
    pred["script"][1]["type"] = "Interior"  # a synonym of INT
    pred["script"][1]["time"] = "day"  # wrong
    result = evaluate(gt, pred)
    f = result.scenes.fields
    assert f["type"].score == 2.0 and f["time"].score == 1.0
    assert f["time"].f1 == pytest.approx(0.5)
    assert f["environment"].f1 == 1.0 and f["mood"].f1 == 1.0
    # lexical judge: ½·token-set ratio (1.0: {room, 1} ⊂ the prediction) + ½·Levenshtein (14 insertions / 20)
    assert f["location"].score == pytest.approx(1.0 + 0.5 * 1.0 + 0.5 * (1 - 14 / 20))
    assert result.scenes.tiou(0.7) == 1.0


def test_dataset_sums_numerators_and_denominators_before_dividing():
    gt_a, pred_a = _script(1), _script(1)
    pred_a["script"][0]["events"] += [  # two hallucinations far from the GT events (scene extended)
        {"timestamp": 200, "character": "Anna", "action": "leaves"},
        {"timestamp": 230, "character": "Anna", "action": "returns"},
    ]
    pred_a["script"][0]["end_timestamp"] = 240
    gt_b, pred_b = _script(1), {"script": []}  # nothing predicted: 3 missed events
    result = evaluate_dataset({"a": gt_a, "b": gt_b}, {"a": pred_a, "b": pred_b})
    a, b = (v.events.fields["dialogue"] for v in result.videos)
    assert (a.score, a.n_pred, a.n_gt) == (3.0, 3, 3)
    assert (b.score, b.n_pred, b.n_gt) == (0.0, 0, 3)
    total = result.events.fields["dialogue"]
    assert (total.score, total.n_pred, total.n_gt) == (3.0, 3, 6)
    assert total.precision == 1.0 and total.recall == 0.5  # not the mean of the videos' recalls (1 and 0)
    t = result.events.temporal[0.1]
    # video a: 3 hits, 5 pred groups, 3 GT groups; video b: 0, 0, 3
    assert (t.score, t.n_pred, t.n_gt) == (3, 5, 6)
    assert result.events.tiou(0.1) == pytest.approx(2 * 0.6 * 0.5 / 1.1)
