"""Character identity across a whole video: B-cubed over aligned events (a v2s addition, not in the paper).

The paper's character field asks, group by group, whether the predicted name matches after the stage-2 mapping.
It cannot see whether one person kept one identity for the whole video, which is what the engine's character
memory (the CPM) is for. This metric measures exactly that, per video:

Items. Only the stage-1 event alignment decides which events belong together (the same groups the V2S event
metrics use). Inside each aligned group, the GT events whose character is a cast name (not "Environment", not
empty) are paired one-to-one with the group's predicted events, greedily by S_text (the alignment's
(5·S_dialogue + 3·S_action)/8 on the two single events), highest first, ties by the closer start time, then by
order. The groups are 1-to-1, 1-to-N or N-to-1, so a GT event of a 1-to-N group takes its best predicted
event and the predicted event of an N-to-1 group goes to its best cast GT event (the other GT events of that
group give no item: a prediction that merged two characters' lines into one event made a segmentation error,
which the V2S fields already count, not evidence that its identity mixes them). The pairing never looks at the names, so it
cannot favour a correct identity. Missed GT events (GT-only groups) and hallucinations give no item.

Labels. True: the GT character name. Predicted: the predicted event's `character_id` (the canonical CPM code a
record carries), else its `character`; an event with neither is its own singleton identity (it claims nobody).
B-cubed needs no mapping between the two label sets, so the stage-2 mapping is not used.

Scores. With n_tp items of true label t and predicted label p in one scope, n_t and n_p the label totals:
    precision_sum = Σ_tp n_tp² / n_p        (per item: the share of its predicted cluster with its true label)
    recall_sum    = Σ_tp n_tp² / n_t        (per item: the share of its true character with its predicted id)
    P = precision_sum / N, R = recall_sum / N, F1 = 2PR / (P + R)
A scope is one video (identities never cross videos) or, with scope "series", all videos of one series (the
CPM keeps one code per character across a series' episodes). A dataset pools the items: it sums precision_sum,
recall_sum and N over the scopes before dividing, as the V2S figures sum their counts. No item → undefined.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evaluation.alignment import AlignSettings, Group, text_score
from evaluation.metrics import f1
from evaluation.schema import Unit
from evaluation.text import normalise

IdentityScope = Literal["video", "series"]
NON_CAST = frozenset({"environment"})
"""GT character names (after `normalise`) that are not a person: the engine's sound/scenery events"""
UNLABELLED = ""
"""the predicted label of an event with neither `character_id` nor `character`"""


@dataclass(frozen=True, slots=True)
class IdentityItem:
    """One (GT event, predicted event) pair of an aligned group, with both identity labels."""

    video: str
    gt_index: int
    pred_index: int
    true: str
    """the GT character name"""
    pred: str
    """the predicted `character_id`, else `character`; `UNLABELLED` when the event has neither"""

    def pred_key(self) -> tuple[str, str, int]:
        """The predicted cluster: the label, except that every unlabelled event is a cluster of its own."""
        if self.pred == UNLABELLED:
            return (UNLABELLED, self.video, self.pred_index)
        return (self.pred, "", -1)


@dataclass(frozen=True, slots=True)
class IdentityCluster:
    """One label of one side and how its items spread over the other side's labels."""

    scope: str
    label: str
    counts: dict[str, int]
    """the other side's labels → items (for a true character, `UNLABELLED` counts all its unlabelled items)"""
    distinct: int
    """distinct labels on the other side (each unlabelled item is one predicted identity)"""

    @property
    def items(self) -> int:
        return sum(self.counts.values())

    def to_dict(self, side: str, other: str) -> dict[str, Any]:
        return {
            "scope": self.scope,
            side: self.label,
            "items": self.items,
            other: self.distinct,
            "counts": self.counts,
        }


def _worst_first(clusters: Iterable[IdentityCluster]) -> list[IdentityCluster]:
    return sorted(clusters, key=lambda c: (-c.distinct, -c.items, c.scope, c.label))


@dataclass
class IdentityResult:
    """B-cubed sums and split/mix tables of one video, one series or a dataset (see the module docstring)."""

    items: int = 0
    cast_events: int = 0
    """GT events with a cast name, aligned or not (items ≤ cast_events; the rest were missed or unpaired)"""
    precision_sum: float = 0.0
    recall_sum: float = 0.0
    splits: list[IdentityCluster] = field(default_factory=list)
    """per true character: the predicted ids its items got"""
    mixes: list[IdentityCluster] = field(default_factory=list)
    """per predicted id: the true characters its items belong to"""

    def __add__(self, other: IdentityResult) -> IdentityResult:
        return IdentityResult(
            items=self.items + other.items,
            cast_events=self.cast_events + other.cast_events,
            precision_sum=self.precision_sum + other.precision_sum,
            recall_sum=self.recall_sum + other.recall_sum,
            splits=[*self.splits, *other.splits],
            mixes=[*self.mixes, *other.mixes],
        )

    @property
    def precision(self) -> float | None:
        return self.precision_sum / self.items if self.items else None

    @property
    def recall(self) -> float | None:
        return self.recall_sum / self.items if self.items else None

    @property
    def f1(self) -> float | None:
        return f1(self.precision, self.recall)

    def worst_splits(self, n: int | None = 5) -> list[IdentityCluster]:
        """True characters given more than one predicted identity, most identities first."""
        return _worst_first(c for c in self.splits if c.distinct > 1)[:n]

    def worst_mixes(self, n: int | None = 5) -> list[IdentityCluster]:
        """Predicted identities covering more than one true character, most characters first."""
        return _worst_first(c for c in self.mixes if c.distinct > 1)[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": "b-cubed character identity (v2s addition, not in the paper)",
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "items": self.items,
            "cast_events": self.cast_events,
            "precision_sum": round(self.precision_sum, 6),
            "recall_sum": round(self.recall_sum, 6),
            "split_characters": len(self.worst_splits(None)),
            "mixed_ids": len(self.worst_mixes(None)),
            "splits": [c.to_dict("character", "ids") for c in _worst_first(self.splits)],
            "mixes": [c.to_dict("id", "characters") for c in _worst_first(self.mixes)],
        }


def is_cast(name: str) -> bool:
    """A GT character that is a person: not empty and not "Environment"."""
    key = normalise(name)
    return bool(key) and key not in NON_CAST


def predicted_label(unit: Unit) -> str:
    """The predicted identity: the canonical CPM code when the record has one, else the name used."""
    return unit.character_id.strip() or unit.character.strip() or UNLABELLED


def _pair_in_group(
    gt_idx: Sequence[int],
    pred_idx: Sequence[int],
    gt: Sequence[Unit],
    pred: Sequence[Unit],
    settings: AlignSettings,
) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs of a group by S_text (ties: closer start, then order); names are not read."""
    cells = []
    for i in gt_idx:
        g_dia, g_act = normalise(gt[i].text("dialogue")), normalise(gt[i].text("action"))
        for j in pred_idx:
            s = text_score(
                g_dia, g_act, normalise(pred[j].text("dialogue")), normalise(pred[j].text("action")), settings
            )
            cells.append((-s, abs(gt[i].start - pred[j].start), i, j))
    cells.sort()
    used_gt: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for _s, _dt, i, j in cells:
        if i in used_gt or j in used_pred:
            continue
        used_gt.add(i)
        used_pred.add(j)
        pairs.append((i, j))
    return sorted(pairs)


def identity_items(
    groups: Sequence[Group],
    gt: Sequence[Unit],
    pred: Sequence[Unit],
    *,
    video: str = "",
    settings: AlignSettings | None = None,
) -> list[IdentityItem]:
    """The items of one video: cast GT events of aligned groups paired one-to-one with predicted events."""
    settings = settings or AlignSettings()
    items: list[IdentityItem] = []
    for group in groups:
        if group.kind != "aligned":
            continue  # a miss has no predicted identity; a hallucination no true one
        cast = [i for i in group.gt if is_cast(gt[i].character)]
        for i, j in _pair_in_group(cast, group.pred, gt, pred, settings):
            items.append(IdentityItem(video, i, j, gt[i].character.strip(), predicted_label(pred[j])))
    return items


def count_cast_events(gt: Sequence[Unit]) -> int:
    return sum(1 for unit in gt if is_cast(unit.character))


def score_identity(items: Sequence[IdentityItem], *, scope: str = "", cast_events: int = 0) -> IdentityResult:
    """B-cubed precision/recall sums and split/mix tables of the items of one scope (a video or a series)."""
    joint = Counter((it.true, it.pred_key()) for it in items)
    n_true = Counter(it.true for it in items)
    n_pred = Counter(it.pred_key() for it in items)
    precision_sum = math.fsum(n * n / n_pred[p] for (_t, p), n in joint.items())
    recall_sum = math.fsum(n * n / n_true[t] for (t, _p), n in joint.items())

    by_true: dict[str, Counter[str]] = {}
    distinct_pred: dict[str, int] = Counter()
    by_pred: dict[tuple[str, str, int], Counter[str]] = {}
    for (t, p), n in joint.items():
        by_true.setdefault(t, Counter())[p[0]] += n
        distinct_pred[t] += 1
        by_pred.setdefault(p, Counter())[t] += n
    splits = [IdentityCluster(scope, t, dict(c), distinct_pred[t]) for t, c in by_true.items()]
    # an unlabelled event is a cluster of one: it cannot mix anybody, so it is not listed as a predicted id
    mixes = [IdentityCluster(scope, p[0], dict(c), len(c)) for p, c in by_pred.items() if p[0] != UNLABELLED]
    return IdentityResult(len(items), cast_events, precision_sum, recall_sum, splits, mixes)


def pool_by_scope(
    videos: Sequence[tuple[str, str | None, Sequence[IdentityItem], int]], scope: IdentityScope = "video"
) -> IdentityResult:
    """Dataset identity from (video id, series, items, cast GT events) per video: one B-cubed per scope, pooled.

    `video` scope: every video alone. `series` scope: the videos of one series share identities (the same GT
    name is one person and the same predicted code one identity in every episode); a video without a series
    stays alone.
    """
    # keyed by kind too, so that a series named like a video id stays apart from that video
    pools: dict[tuple[str, str], tuple[list[IdentityItem], int]] = {}
    for video_id, series, items, cast_events in videos:
        key = ("series", series) if scope == "series" and series else ("video", video_id)
        pooled, cast = pools.get(key, ([], 0))
        pools[key] = ([*pooled, *items], cast + cast_events)
    total = IdentityResult()
    for (_kind, name), (items, cast_events) in pools.items():
        total = total + score_identity(items, scope=name, cast_events=cast_events)
    return total
