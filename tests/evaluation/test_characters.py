"""Stage 2: name categories, temporal IoU of active intervals, the mapping and its category rules."""

from __future__ import annotations

import pytest

from evaluation.characters import active_intervals, allowed, interval_iou, map_characters
from evaluation.judges import LexicalJudge
from evaluation.names import CharacterJudgement, classify_name
from evaluation.schema import Unit


def ev(name: str, start: float, end: float) -> Unit:
    return Unit(index=0, start=start, end=end, character=name, texts={"action": "x"})


class PairingJudge(LexicalJudge):
    """The lexical categories, plus the given (pred, GT) pairs as the LLM's mapping graph G."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def resolve_characters(self, gt_names, pred_names) -> CharacterJudgement:
        base = super().resolve_characters(gt_names, pred_names)
        return CharacterJudgement(base.categories, list(self.pairs))


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("John", "proper"),
        ("John Smith", "proper"),
        ("Mrs. Lee", "proper"),
        ("James", "proper"),
        ("Officer A", "singular"),
        ("officer", "singular"),
        ("man in black", "singular"),
        ("Man in Black", "singular"),
        ("unknown_002", "singular"),
        ("Environment", "singular"),
        ("the boss", "singular"),
        ("cops", "plural"),
        ("Officers", "plural"),
        ("thieves", "plural"),
        ("the crowd", "plural"),
        ("police", "plural"),
        ("group of men", "plural"),
        ("张三", "proper"),
        ("警察", "singular"),
        ("警察们", "plural"),
    ],
)
def test_name_categories(name, category):
    assert classify_name(name) == category


def test_category_rules():
    assert not allowed("proper", "proper")
    assert not allowed("proper", "plural") and not allowed("plural", "proper")
    assert not allowed("singular", "plural") and not allowed("plural", "singular")
    assert allowed("proper", "singular") and allowed("singular", "proper")
    assert allowed("singular", "singular") and allowed("plural", "plural")


def test_interval_iou_and_active_intervals():
    assert interval_iou([(0, 10)], [(5, 15)]) == pytest.approx(5 / 15)
    assert interval_iou([(0, 10)], [(10, 20)]) == 0.0
    assert interval_iou([(0, 2), (4, 6)], [(1, 5)]) == pytest.approx(2 / 6)
    assert interval_iou([], []) == 0.0
    spans = active_intervals([ev("A", 0, 5), ev("A", 4, 8), ev("A", 10, 12), ev("B", 1, 2)])
    assert spans == {"A": [(0, 8), (10, 12)], "B": [(1, 2)]}


def test_mapping_of_the_paper_kinds_of_names():
    gt = [ev("John", 0, 10), ev("police officer", 10, 20), ev("robbers", 20, 30)]
    pred = [ev("John Smith", 0, 10), ev("cop", 10, 20), ev("thieves", 20, 30), ev("Mary", 40, 45)]
    result = map_characters(gt, pred, LexicalJudge())
    assert result.mapping == {"John Smith": "John", "cop": "police officer", "thieves": "robbers"}
    assert result.anchored == {"John Smith": "John"}  # proper pair (the words of "John" ⊂ "John Smith")
    # full temporal overlap (IoU 1); Levenshtein: "cop"/"police officer" 12 edits over 14, "thieves"/"robbers"
    # 6 over 7 → S_fallback = 0.5 + 0.5·(1/7) for both
    assert result.fallback == pytest.approx({"cop": 0.5 + 0.5 / 7, "thieves": 0.5 + 0.5 / 7})
    # "Mary" (proper) may only go to the singular GT name, which "cop" took; with IoU 0 and no common letter
    # her score would be 0 anyway
    assert "Mary" not in result.mapping
    assert result.apply("Mary") == "Mary" and result.apply("cop") == "police officer"


def test_proper_to_proper_needs_the_judges_pair():
    gt, pred = [ev("John", 0, 10)], [ev("Jon", 0, 10)]
    # IoU 1 and a close spelling, but two proper names: not without G
    assert map_characters(gt, pred, LexicalJudge()).mapping == {}
    assert map_characters(gt, pred, PairingJudge([("Jon", "John")])).mapping == {"Jon": "John"}


def test_proper_to_plural_and_singular_to_plural_are_never_matched():
    assert map_characters([ev("robbers", 0, 10)], [ev("Jon", 0, 10)], LexicalJudge()).mapping == {}
    # the paper's example: GT "Officers" (plural) against "Officer A" / "Officer B" (singular)
    gt = [ev("Officers", 5, 15)]
    pred = [ev("Officer A", 4, 8), ev("Officer B", 9, 14)]
    assert map_characters(gt, pred, LexicalJudge()).mapping == {}
    # and a judge pair that breaks rule 2 is ignored too
    judge = PairingJudge([("Jon", "robbers")])
    assert map_characters([ev("robbers", 0, 10)], [ev("Jon", 0, 10)], judge).mapping == {}


def test_equal_names_are_anchored_whatever_their_category():
    result = map_characters([ev("man", 0, 10)], [ev("Man", 50, 60)], LexicalJudge())
    assert result.mapping == {"Man": "man"} and result.anchored == {"Man": "man"}


def test_fallback_threshold_is_exclusive_0_05():
    # names with no common letter (Sim_text 0): S_fallback = 0.5·IoU
    gt = [ev("xyz", 0, 100)]
    assert map_characters(gt, [ev("abc", 92, 100)], LexicalJudge()).mapping == {}  # IoU 0.08 → 0.04
    result = map_characters(gt, [ev("abc", 88, 100)], LexicalJudge())  # IoU 0.12 → 0.06
    assert result.mapping == {"abc": "xyz"}
    assert result.fallback["abc"] == pytest.approx(0.06)


def test_greedy_matching_is_one_to_one_highest_first():
    gt = [ev("guard", 0, 10)]
    pred = [ev("guard man", 0, 10), ev("watchman", 0, 5)]
    result = map_characters(gt, pred, LexicalJudge())
    # "guard man": IoU 1, 4 edits over 9 → 0.5 + 0.5·5/9; "watchman": IoU 0.5, lower → left out
    assert result.mapping == {"guard man": "guard"}
    assert result.fallback["guard man"] == pytest.approx(0.5 + 0.5 * 5 / 9)


def test_no_names_on_one_side():
    assert map_characters([], [ev("A", 0, 1)], LexicalJudge()).mapping == {}
    assert map_characters([ev("A", 0, 1)], [], LexicalJudge()).mapping == {}
