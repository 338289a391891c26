"""Stage 1 — text-content-guided alignment (paper §4.1.1).

A candidate group pairs a contiguous run of ground-truth units with a contiguous run of predicted units, one
side of length 1 and the other of length 1..`group_size` (1-to-1, 1-to-N, N-to-1). Its score is

    S_align = S_text + S_time
    S_text  = (5·S_dialogue + 3·S_action) / (5 + 3)      normalised Levenshtein on the runs' concatenated texts
    S_time  = min(0.1, exp(−Δt_min / 15) · 0.1)          Δt_min: the closest GT/pred start times in the group

and a group is a candidate only if every GT/pred pair in it starts less than 30 s apart (the paper's "< 30.0").
Weighted interval scheduling then picks the set of groups that maximises the total score, with no unit used
twice and the order strictly preserved (every chosen group lies after the previous one on both sides).

Cost. Candidates are only generated inside the time band |t_gt − t_pred| < window: with both sides sorted by
time a two-pointer sweep gives, for each GT unit, the run of predictions inside the band, so the number of
candidates is C ≤ (#GT) · w · (2·group_size − 1), where w is the number of predictions in a 2·window slice —
bounded by the event density, not by the script length. The DP is the chain form of weighted interval
scheduling: candidates are visited by GT start; a candidate's best total is its score plus the best total of any
chosen-earlier candidate that ends (on both sides) before it starts, read from a Fenwick tree of prefix maxima
keyed by the predicted end index, into which candidates are inserted once their GT end is passed. That is
O(C log m): linear in the number of units for a bounded group size and event density.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from evaluation.schema import Unit
from evaluation.text import join_texts, levenshtein_sim, normalise


@dataclass(frozen=True)
class AlignSettings:
    group_size: int = 3
    window_s: float = 30.0
    decay_s: float = 15.0
    bonus_max: float = 0.1
    w_dialogue: float = 5.0
    w_action: float = 3.0

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError("group_size must be at least 1")
        if self.window_s <= 0 or self.decay_s <= 0:
            raise ValueError("window_s and decay_s must be positive")


@dataclass(slots=True)
class Group:
    """GT and predicted unit indexes of one group; `score` is S_align (0 for misses and hallucinations)."""

    gt: tuple[int, ...]
    pred: tuple[int, ...]
    score: float = 0.0

    @property
    def kind(self) -> Literal["aligned", "miss", "hallucination"]:
        if self.gt and self.pred:
            return "aligned"
        return "miss" if self.gt else "hallucination"


@dataclass(slots=True)
class Candidate:
    gt_start: int
    gt_end: int  # exclusive
    pred_start: int
    pred_end: int  # exclusive
    score: float


@dataclass(slots=True)
class Alignment:
    groups: list[Group]
    total: float
    candidates: int = 0
    aligned: list[Group] = field(default_factory=list)


def time_bonus(dt: float, settings: AlignSettings = AlignSettings()) -> float:
    """S_time = min(0.1, exp(−Δt/15)·0.1) with the settings' constants."""
    return min(settings.bonus_max, math.exp(-dt / settings.decay_s) * settings.bonus_max)


def text_score(
    gt_dialogue: str,
    gt_action: str,
    pred_dialogue: str,
    pred_action: str,
    settings: AlignSettings = AlignSettings(),
) -> float:
    """S_text on normalised texts (two empty dialogues are identical, as normalised Levenshtein has it)."""
    s_dia = levenshtein_sim(gt_dialogue, pred_dialogue)
    s_act = levenshtein_sim(gt_action, pred_action)
    return (settings.w_dialogue * s_dia + settings.w_action * s_act) / (
        settings.w_dialogue + settings.w_action
    )


class _Runs:
    """Normalised dialogue/action of contiguous runs of units, concatenated and memoised."""

    def __init__(self, units: list[Unit]) -> None:
        self.dialogue = [normalise(u.text("dialogue")) for u in units]
        self.action = [normalise(u.text("action")) for u in units]
        self._cache: dict[tuple[int, int], tuple[str, str]] = {}

    def get(self, start: int, length: int) -> tuple[str, str]:
        if length == 1:
            return self.dialogue[start], self.action[start]
        key = (start, length)
        hit = self._cache.get(key)
        if hit is None:
            stop = start + length
            hit = (join_texts(self.dialogue[start:stop]), join_texts(self.action[start:stop]))
            self._cache[key] = hit
        return hit


def candidate_groups(
    gt: list[Unit], pred: list[Unit], settings: AlignSettings = AlignSettings()
) -> list[Candidate]:
    """All candidate groups inside the time band, in order of GT start (see the module docstring)."""
    gt_t = [u.start for u in gt]
    pd_t = [u.start for u in pred]
    n, m, k_max, window = len(gt), len(pred), settings.group_size, settings.window_s
    gt_runs, pd_runs = _Runs(gt), _Runs(pred)
    wd, wa = settings.w_dialogue, settings.w_action
    norm = wd + wa
    bonus, decay = settings.bonus_max, settings.decay_s
    lev = levenshtein_sim
    out: list[Candidate] = []

    def score(gi: int, ga: int, pj: int, pb: int, dt: float) -> float:
        g_dia, g_act = gt_runs.get(gi, ga)
        p_dia, p_act = pd_runs.get(pj, pb)
        s_text = (wd * lev(g_dia, p_dia) + wa * lev(g_act, p_act)) / norm
        return s_text + min(bonus, math.exp(-dt / decay) * bonus)

    lo = 0
    for i in range(n):
        t = gt_t[i]
        while lo < m and t - pd_t[lo] >= window:
            lo += 1
        j = lo
        while j < m and pd_t[j] - t < window:
            # 1-to-1 and 1-to-N: GT unit i with predictions j .. j+b-1
            dt = abs(pd_t[j] - t)
            for b in range(1, k_max + 1):
                jj = j + b - 1
                if jj >= m or pd_t[jj] - t >= window:
                    break
                dt = min(dt, abs(pd_t[jj] - t))
                out.append(Candidate(i, i + 1, j, jj + 1, score(i, 1, j, b, dt)))
            # N-to-1: GT units i .. i+a-1 with prediction j
            p = pd_t[j]
            dt = abs(p - t)
            for a in range(2, k_max + 1):
                ii = i + a - 1
                if ii >= n or gt_t[ii] - p >= window:
                    break
                dt = min(dt, abs(gt_t[ii] - p))
                out.append(Candidate(i, ii + 1, j, j + 1, score(i, a, j, 1, dt)))
            j += 1
    return out


def align(gt: list[Unit], pred: list[Unit], settings: AlignSettings = AlignSettings()) -> Alignment:
    """The optimal order-preserving set of groups, plus GT-only (miss) and pred-only (hallucination) groups."""
    cands = candidate_groups(gt, pred, settings)
    m = len(pred)
    best = [0.0] * len(cands)
    back = [-1] * len(cands)
    tree_val = [0.0] * (m + 1)
    tree_arg = [-1] * (m + 1)
    by_end = sorted(range(len(cands)), key=lambda c: cands[c].gt_end)
    inserted = 0
    top, top_arg = 0.0, -1
    for c, cand in enumerate(cands):  # already ordered by gt_start
        while inserted < len(by_end) and cands[by_end[inserted]].gt_end <= cand.gt_start:
            d = by_end[inserted]
            value, pos = best[d], cands[d].pred_end
            while pos <= m:
                if value > tree_val[pos]:
                    tree_val[pos], tree_arg[pos] = value, d
                pos += pos & -pos
            inserted += 1
        prev_val, prev_arg, pos = 0.0, -1, cand.pred_start
        while pos > 0:
            if tree_val[pos] > prev_val:
                prev_val, prev_arg = tree_val[pos], tree_arg[pos]
            pos -= pos & -pos
        best[c] = cand.score + prev_val
        back[c] = prev_arg
        if best[c] > top:
            top, top_arg = best[c], c

    aligned: list[Group] = []
    c = top_arg
    while c >= 0:
        cand = cands[c]
        aligned.append(
            Group(
                tuple(range(cand.gt_start, cand.gt_end)),
                tuple(range(cand.pred_start, cand.pred_end)),
                cand.score,
            )
        )
        c = back[c]
    aligned.reverse()

    used_gt = {i for g in aligned for i in g.gt}
    used_pred = {j for g in aligned for j in g.pred}
    groups = list(aligned)
    groups += [Group((i,), ()) for i in range(len(gt)) if i not in used_gt]
    groups += [Group((), (j,)) for j in range(m) if j not in used_pred]

    def start(g: Group) -> tuple[float, int]:
        times = [gt[i].start for i in g.gt] + [pred[j].start for j in g.pred]
        return (min(times), 0 if g.gt else 1)

    groups.sort(key=start)
    return Alignment(groups=groups, total=top, candidates=len(cands), aligned=aligned)
