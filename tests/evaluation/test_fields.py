"""Stage 3: merging per character, greedy matching, S_total / N_pred / N_gt, and the paper's worked example."""

from __future__ import annotations

import pytest

from evaluation import evaluate
from evaluation.fields import greedy_match, merge_event_items, merge_scene_items
from evaluation.judges import LexicalJudge
from evaluation.schema import Unit

GT_ACTION = "secure the perimeter and enter the building"


class TableJudge(LexicalJudge):
    """Fixed similarities for listed pairs (0.0 otherwise); records what it was asked."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table
        self.asked: list[tuple[str, list[tuple[str, str]]]] = []

    def similarity(self, field, pairs):
        self.asked.append((field, list(pairs)))
        return [self.table.get(p, 0.0) for p in pairs]


def paper_example() -> tuple[dict, dict]:
    gt = {
        "script": [
            {
                "scene_id": 1,
                "start_timestamp": "00:00",
                "end_timestamp": "00:20",
                "events": [
                    {
                        "timestamp": "00:05",
                        "end_timestamp": "00:15",
                        "character": "Officers",
                        "action": GT_ACTION,
                    }
                ],
            }
        ]
    }
    pred = {
        "script": [
            {
                "scene_id": 1,
                "start_timestamp": 0,
                "end_timestamp": 20,
                "events": [
                    {
                        "timestamp": "00:04",
                        "end_timestamp": "00:08",
                        "character": "Officer A",
                        "action": "secures the perimeter",
                    },
                    {
                        "timestamp": "00:09",
                        "end_timestamp": "00:14",
                        "character": "Officer B",
                        "action": "enters the building",
                    },
                ],
            }
        ]
    }
    return gt, pred


def test_paper_worked_example_one_to_n_action_group():
    gt, pred = paper_example()
    judge = TableJudge({(GT_ACTION, "secures the perimeter"): 0.90, (GT_ACTION, "enters the building"): 0.85})
    result = evaluate(gt, pred, judge=judge)
    assert [(g.gt, g.pred) for g in result.event_alignment.groups] == [((0,), (0, 1))]
    action = result.events.fields["action"]
    # S_group = max(0.90, 0.85) = 0.90 by greedy one-to-one; the redundant prediction inflates N_pred
    assert (action.score, action.n_pred, action.n_gt) == (pytest.approx(0.90), 2, 1)
    assert action.precision == pytest.approx(0.45)
    assert action.recall == pytest.approx(0.90)
    assert action.f1 == pytest.approx(2 * 0.45 * 0.9 / 1.35)  # 0.6
    # both action pairs went to the judge in one call
    assert judge.asked == [
        ("action", [(GT_ACTION, "secures the perimeter"), (GT_ACTION, "enters the building")])
    ]
    # "Officers" (plural) cannot map to "Officer A"/"Officer B" (singular): no character credit, 2 pred items
    char = result.events.fields["character"]
    assert (char.score, char.n_pred, char.n_gt) == (0.0, 2, 1)
    # fields absent on both sides are undefined, and Overall averages the defined ones: (0 + 0.6) / 2
    assert result.events.fields["dialogue"].f1 is None
    assert result.events.overall()["f1"] == pytest.approx(0.3)
    # merged spans: GT [5, 15], pred [min(4, 9), max(8, 14)] = [4, 14] → tIoU 9/11 ≥ 0.7
    assert result.events.tiou(0.7) == 1.0


def test_merge_items_per_character():
    units = [
        Unit(0, 0, 1, "Anna", {"action": "runs", "dialogue": "wait"}),
        Unit(1, 1, 2, "Ben", {"action": "falls", "dialogue": ""}),
        Unit(2, 2, 3, "Anna", {"action": "jumps", "dialogue": "now"}),
    ]
    items = merge_event_items(units, ("character", "dialogue", "action"))
    assert items == {
        "character": ["Anna", "Ben"],
        "dialogue": ["wait now"],
        "action": ["runs jumps", "falls"],
    }
    renamed = merge_event_items(units, ("character", "action"), rename=lambda n: "X")
    assert renamed == {"character": ["X"], "action": ["runs falls jumps"]}
    scenes = [Unit(0, 0, 1, "", {"location": "Kitchen"}), Unit(1, 1, 2, "", {"location": "kitchen!"})]
    assert merge_scene_items(scenes, ("location", "mood")) == {"location": ["Kitchen"], "mood": []}


def test_greedy_matching_takes_the_highest_first():
    # greedy: (0,0)=0.9 first, then (1,1)=0.1 → 1.0 (an optimal assignment would give 0.85 + 0.8)
    total, matches = greedy_match([[0.9, 0.85], [0.8, 0.1]])
    assert total == pytest.approx(1.0)
    assert matches == [(0, 0, 0.9), (1, 1, 0.1)]
    assert greedy_match([[0.0, 0.0]]) == (0, [])
    assert greedy_match([]) == (0, [])


def _scene(events, end=300):
    return {"scene_id": 1, "start_timestamp": 0, "end_timestamp": end, "events": events}


def test_denominators_count_missed_gt_items_but_not_hallucinated_groups():
    gt = {
        "script": [
            _scene(
                [
                    {"timestamp": 0, "character": "Anna", "dialogue": "hello there", "action": "waves"},
                    {"timestamp": 100, "character": "Ben", "action": "leaves"},
                ]
            )
        ]
    }
    pred = {
        "script": [
            _scene(
                [
                    {"timestamp": 1, "character": "Anna", "dialogue": "Hello there!", "action": "waves"},
                    {"timestamp": 200, "character": "Carl", "action": "dances"},
                ]
            )
        ]
    }
    result = evaluate(gt, pred)
    kinds = [g.kind for g in result.event_alignment.groups]
    assert kinds == ["aligned", "miss", "hallucination"]
    f = result.events.fields
    assert (f["character"].score, f["character"].n_pred, f["character"].n_gt) == (1.0, 1, 2)
    assert (f["dialogue"].score, f["dialogue"].n_pred, f["dialogue"].n_gt) == (1.0, 1, 1)
    assert (f["action"].score, f["action"].n_pred, f["action"].n_gt) == (1.0, 1, 2)
    assert f["character"].precision == 1.0 and f["character"].recall == 0.5
    assert f["expression"].f1 is None and f["audio_cue"].f1 is None
    assert result.events.overall()["f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    # spans in a scene ending at 300: GT [0,100], [100,300]; pred [1,200], [200,300];
    # tIoU(aligned) = 99/200 = 0.495 → a hit at 0.1 and 0.3 only; P = 1/2, R = 1/2
    assert result.events.tiou(0.1) == pytest.approx(0.5)
    assert result.events.tiou(0.3) == pytest.approx(0.5)
    assert result.events.tiou(0.5) == 0.0


def test_dialogue_is_normalised_levenshtein_and_character_uses_the_mapping():
    gt = {"script": [_scene([{"timestamp": 0, "character": "police officer", "dialogue": "abcd"}])]}
    pred = {"script": [_scene([{"timestamp": 0, "character": "cop", "dialogue": "ABCE"}])]}
    result = evaluate(gt, pred)
    assert result.characters.mapping == {"cop": "police officer"}
    assert result.events.fields["character"].score == 1.0
    assert result.events.fields["dialogue"].score == pytest.approx(0.75)


def test_one_characters_events_in_a_group_merge_into_one_item():
    gt = {"script": [_scene([{"timestamp": 0, "character": "John", "action": "opens the door and leaves"}])]}
    pred = {
        "script": [
            _scene(
                [
                    {"timestamp": 0, "character": "John", "action": "opens the door"},
                    {"timestamp": 2, "character": "John", "action": "and leaves"},
                ]
            )
        ]
    }
    result = evaluate(gt, pred)
    action = result.events.fields["action"]
    assert (action.score, action.n_pred, action.n_gt) == (1.0, 1, 1)  # "opens the door and leaves" == GT
