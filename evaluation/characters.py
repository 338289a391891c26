"""Stage 2 — character resolution (paper §4.1.2): a mapping from predicted names to ground-truth names.

1. The judge classifies every name (proper / singular / plural) and proposes proper-name pairs (the paper's
   mapping graph G). Names equal after normalisation are always paired (whatever their category); the
   judge's pairs are accepted unless they break rule 2 or 3 below. Several predicted names may map to one GT
   name through these anchors (aliases such as "John" and "John Smith").
2. Every remaining (GT, pred) pair allowed by the category rules gets
       S_fallback = 0.5·IoU_temporal + 0.5·Sim_text
   where IoU_temporal is the length of the intersection over the length of the union of the two names'
   active intervals (the union of their events' spans) and Sim_text the normalised Levenshtein similarity of
   the names. Greedy one-to-one matching in descending order accepts pairs with S_fallback > 0.05.
   Rules: (1) no proper↔proper unless paired in G, (2) no proper↔plural, (3) no singular↔plural.
Predicted names left unmapped keep their own name (they can then only equal a GT name by coincidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evaluation.names import Category, classify_name
from evaluation.schema import Unit
from evaluation.text import normalise, text_sim

if TYPE_CHECKING:
    from evaluation.judges import Judge

ACCEPT_THRESHOLD = 0.05


@dataclass
class CharacterMapping:
    mapping: dict[str, str] = field(default_factory=dict)
    """predicted name → GT name"""
    categories: dict[str, Category] = field(default_factory=dict)
    anchored: dict[str, str] = field(default_factory=dict)
    """the part of `mapping` fixed before the fallback (equal names and the judge's pairs)"""
    fallback: dict[str, float] = field(default_factory=dict)
    """S_fallback of each pair accepted by the fallback, keyed by predicted name"""

    def apply(self, name: str) -> str:
        return self.mapping.get(name, name)


def allowed(pred_category: Category, gt_category: Category) -> bool:
    """The category rules of the fallback matching (proper↔proper is only possible through G)."""
    cats = {pred_category, gt_category}
    return not (
        (pred_category == gt_category == "proper")
        or cats == {"proper", "plural"}
        or cats == {"singular", "plural"}
    )


def active_intervals(units: list[Unit]) -> dict[str, list[tuple[float, float]]]:
    """Each character's active time as a sorted list of disjoint intervals (the union of its events' spans)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for unit in units:
        if unit.character:
            spans.setdefault(unit.character, []).append((unit.start, unit.end))
    merged: dict[str, list[tuple[float, float]]] = {}
    for name, items in spans.items():
        items.sort()
        out: list[tuple[float, float]] = []
        for start, end in items:
            if out and start <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], end))
            else:
                out.append((start, end))
        merged[name] = out
    return merged


def _length(intervals: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in intervals)


def interval_iou(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """|A ∩ B| / |A ∪ B| for two sorted lists of disjoint intervals (0 when the union has no length)."""
    inter, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            inter += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    union = _length(a) + _length(b) - inter
    return inter / union if union > 0 else 0.0


def _names(units: list[Unit]) -> list[str]:
    return list(dict.fromkeys(u.character for u in units if u.character))


def map_characters(
    gt: list[Unit], pred: list[Unit], judge: Judge, threshold: float = ACCEPT_THRESHOLD
) -> CharacterMapping:
    """The global predicted → GT name mapping of one video (see the module docstring)."""
    gt_names, pred_names = _names(gt), _names(pred)
    if not gt_names or not pred_names:
        return CharacterMapping()
    judgement = judge.resolve_characters(gt_names, pred_names)
    categories: dict[str, Category] = {
        n: judgement.categories.get(n) or classify_name(n) for n in [*gt_names, *pred_names]
    }
    mapping: dict[str, str] = {}
    gt_by_norm: dict[str, str] = {}
    for g in gt_names:
        gt_by_norm.setdefault(normalise(g), g)
    for p in pred_names:
        g = gt_by_norm.get(normalise(p))
        if g is not None:
            mapping[p] = g
    gt_set, pred_set = set(gt_names), set(pred_names)
    for p, g in judgement.pairs:
        if p in mapping or p not in pred_set or g not in gt_set:
            continue
        cats = {categories[p], categories[g]}
        if cats in ({"proper", "plural"}, {"singular", "plural"}):
            continue
        mapping[p] = g
    anchored = dict(mapping)

    gt_active, pred_active = active_intervals(gt), active_intervals(pred)
    used_gt = set(mapping.values())
    scored: list[tuple[float, int, int, str, str]] = []
    for pi, p in enumerate(pred_names):
        if p in mapping:
            continue
        for gi, g in enumerate(gt_names):
            if g in used_gt or not allowed(categories[p], categories[g]):
                continue
            s = 0.5 * interval_iou(gt_active.get(g, []), pred_active.get(p, [])) + 0.5 * text_sim(g, p)
            if s > threshold:
                scored.append((-s, pi, gi, p, g))
    scored.sort()
    fallback: dict[str, float] = {}
    for neg, _pi, _gi, p, g in scored:
        if p in mapping or g in used_gt:
            continue
        mapping[p] = g
        used_gt.add(g)
        fallback[p] = -neg
    return CharacterMapping(mapping=mapping, categories=categories, anchored=anchored, fallback=fallback)
