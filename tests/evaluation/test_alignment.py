"""Stage 1: candidate groups, S_align, the banded weighted-interval-scheduling DP."""

from __future__ import annotations

import itertools
import math
import random
from functools import cache

import pytest
from rapidfuzz.distance import Levenshtein

from evaluation.alignment import AlignSettings, align, candidate_groups, text_score, time_bonus
from evaluation.schema import Unit

BONUS_1S = 0.1 * math.exp(-1 / 15)  # S_time for Δt = 1 s


def u(t: float, dialogue: str = "", action: str = "") -> Unit:
    return Unit(index=0, start=t, end=t + 1, texts={"dialogue": dialogue, "action": action})


def shape(groups):
    return [(g.gt, g.pred) for g in groups]


def test_time_bonus_is_capped_exponential_decay():
    assert time_bonus(0) == pytest.approx(0.1)
    assert time_bonus(15) == pytest.approx(0.1 / math.e)
    assert time_bonus(30) == pytest.approx(0.1 * math.exp(-2))


def test_text_score_weights_dialogue_5_action_3():
    # dialogue: one substitution in four characters → 0.75; two empty actions are identical → 1.0
    assert text_score("abcd", "", "abce", "") == pytest.approx((5 * 0.75 + 3 * 1.0) / 8)
    assert text_score("", "abcd", "", "abce") == pytest.approx((5 * 1.0 + 3 * 0.75) / 8)
    assert text_score("hello", "run", "", "") == 0.0


def test_one_to_one_pairs_and_total():
    gt = [u(0, "hello"), u(10, "world")]
    pred = [u(1, "hello"), u(11, "world")]
    result = align(gt, pred)
    assert shape(result.groups) == [((0,), (0,)), ((1,), (1,))]
    assert result.total == pytest.approx(2 * (1.0 + BONUS_1S))
    assert [g.kind for g in result.groups] == ["aligned", "aligned"]


def test_pairs_30_s_apart_or_more_are_not_candidates():
    assert candidate_groups([u(0, "hi")], [u(30, "hi")]) == []
    assert len(candidate_groups([u(0, "hi")], [u(29.9, "hi")])) == 1
    result = align([u(0, "hi")], [u(40, "hi")])
    assert shape(result.groups) == [((0,), ()), ((), (0,))]
    assert [g.kind for g in result.groups] == ["miss", "hallucination"]
    assert result.total == 0.0


def test_one_to_n_group_of_the_paper_example():
    gt = [u(5, action="secure the perimeter and enter the building")]
    pred = [u(4, action="secures the perimeter"), u(9, action="enters the building")]
    result = align(gt, pred)
    assert shape(result.groups) == [((0,), (0, 1))]
    # concatenated run "secures the perimeter enters the building": Levenshtein distance 6 over 43 characters;
    # both dialogues empty (identical, 1.0); Δt_min = |5 − 4| = 1 s
    assert result.total == pytest.approx((5 * 1.0 + 3 * (37 / 43)) / 8 + BONUS_1S)


def test_n_to_one_group():
    gt = [u(4, action="secures the perimeter"), u(9, action="enters the building")]
    pred = [u(5, action="secure the perimeter and enter the building")]
    result = align(gt, pred)
    assert shape(result.groups) == [((0, 1), (0,))]
    assert result.total == pytest.approx((5 + 3 * 37 / 43) / 8 + BONUS_1S)


def test_group_size_one_forces_one_to_one_and_leaves_a_hallucination():
    gt = [u(5, action="secure the perimeter and enter the building")]
    pred = [u(4, action="secures the perimeter"), u(9, action="enters the building")]
    result = align(gt, pred, AlignSettings(group_size=1))
    assert shape(result.groups) == [((0,), (0,)), ((), (1,))]
    assert result.total == pytest.approx((5 + 3 * 19 / 43) / 8 + BONUS_1S)


def test_order_is_strictly_preserved():
    # the crossing pairs (g0↔p1, g1↔p0) cannot both be chosen; the best non-crossing set is g1↔p0 alone
    # (1 + 0.1·e^(−4/15) = 1.0766) rather than g0↔p0 + g1↔p1 (2·(3/8 + 0.0936) = 0.937)
    gt = [u(0, "aaa"), u(5, "bbb")]
    pred = [u(1, "bbb"), u(6, "aaa")]
    result = align(gt, pred)
    assert next(g for g in result.groups if g.kind == "aligned").gt == (1,)
    assert shape(result.groups) == [((0,), ()), ((1,), (0,)), ((), (1,))]
    assert result.total == pytest.approx(1 + 0.1 * math.exp(-4 / 15))


def test_empty_sides():
    assert align([], []).groups == []
    assert [g.kind for g in align([u(0, "a")], []).groups] == ["miss"]
    assert [g.kind for g in align([], [u(0, "a"), u(3, "b")]).groups] == ["hallucination"] * 2


def _brute_force(gt: list[Unit], pred: list[Unit], k: int, window: float = 30.0) -> float:
    """Unbanded O(n·m·k) recursion with an independent score, for cross-checking the DP."""

    def run(units: list[Unit], a: int, n: int, name: str) -> str:
        from evaluation.text import normalise

        return " ".join(t for t in (normalise(x.texts[name]) for x in units[a : a + n]) if t)

    def score(i: int, a: int, j: int, b: int) -> float | None:
        dts = [abs(g.start - p.start) for g in gt[i : i + a] for p in pred[j : j + b]]
        if max(dts) >= window:
            return None
        dia = Levenshtein.normalized_similarity(run(gt, i, a, "dialogue"), run(pred, j, b, "dialogue"))
        act = Levenshtein.normalized_similarity(run(gt, i, a, "action"), run(pred, j, b, "action"))
        return (5 * dia + 3 * act) / 8 + min(0.1, math.exp(-min(dts) / 15) * 0.1)

    @cache
    def best(i: int, j: int) -> float:
        if i >= len(gt) or j >= len(pred):
            return 0.0
        out = max(best(i + 1, j), best(i, j + 1))
        shapes = [(1, b) for b in range(1, k + 1)] + [(a, 1) for a in range(2, k + 1)]
        for a, b in shapes:
            if i + a <= len(gt) and j + b <= len(pred):
                s = score(i, a, j, b)
                if s is not None:
                    out = max(out, s + best(i + a, j + b))
        return out

    return best(0, 0)


@pytest.mark.parametrize("seed", range(25))
def test_dp_matches_brute_force_on_random_scripts(seed):
    rng = random.Random(seed)
    words = ["run", "door", "open", "hello", "no", "yes", "the car", "go away", ""]

    def script(n: int) -> list[Unit]:
        times = sorted(rng.uniform(0, 90) for _ in range(n))
        return [u(t, rng.choice(words), rng.choice(words)) for t in times]

    gt, pred = script(rng.randint(0, 7)), script(rng.randint(0, 7))
    k = rng.randint(1, 3)
    result = align(gt, pred, AlignSettings(group_size=k))
    assert result.total == pytest.approx(_brute_force(gt, pred, k), abs=1e-9)
    # the chosen groups are disjoint, order-preserving, and cover every unit exactly once with the leftovers
    aligned = [g for g in result.groups if g.kind == "aligned"]
    for a, b in itertools.pairwise(aligned):
        assert a.gt[-1] < b.gt[0] and a.pred[-1] < b.pred[0]
    assert sorted(i for g in result.groups for i in g.gt) == list(range(len(gt)))
    assert sorted(j for g in result.groups for j in g.pred) == list(range(len(pred)))
    assert sum(g.score for g in aligned) == pytest.approx(result.total)


def test_candidate_count_grows_linearly_with_events():
    def script(n: int) -> list[Unit]:
        return [u(4.0 * i, f"line {i}", f"act {i}") for i in range(n)]

    small = len(candidate_groups(script(100), script(100)))
    large = len(candidate_groups(script(400), script(400)))
    assert 3.8 <= large / small <= 4.2  # ×4 events → ×4 candidates (up to edge effects)
    # at most (2·30 s / 4 s) = 15 predictions in the band per GT event, times 5 shapes for group size 3
    assert large / 400 <= 15 * 5
