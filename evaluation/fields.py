"""Stage 3 — field-level evaluation (paper §4.1.3).

Inside each aligned group the units are merged into items: for events, one item per character (after the
stage-2 mapping on the predicted side), that character's texts concatenated; different characters stay separate
items. For scenes (no characters), one item per distinct value (equal after normalisation) of the field.
Items with an empty text do not exist for that field.

Field similarity: character — 1 if the (mapped) names are equal, else 0; dialogue — normalised Levenshtein;
the other fields — the judge, in [0, 1] (texts equal after normalisation score 1.0 without asking it). Within a group, greedy one-to-one matching (highest similarity first,
ties by item order) sums the matched similarities into S_group. Over a video:
    S_total = Σ S_group,  N_pred_total = Σ N_pred over aligned groups,  N_gt_total = Σ N_gt over all GT
(aligned and missed), precision = S_total / N_pred_total, recall = S_total / N_gt_total. Redundant predicted
items inside an aligned group raise N_pred without adding to S_total; hallucinated groups do not count here
(they are penalised by stage 4).

All judge pairs of a video are collected first and sent as one call per field (the LLM judge batches them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from evaluation.alignment import Group
from evaluation.metrics import Counts
from evaluation.schema import Unit
from evaluation.text import join_texts, normalise, text_sim

if TYPE_CHECKING:
    from evaluation.judges import Judge

Items = dict[str, list[str]]
"""field → item texts (for "character", the item names)"""


def merge_event_items(
    units: Sequence[Unit], fields: Sequence[str], rename: Callable[[str], str] | None = None
) -> Items:
    """One item per character: that character's texts in the group concatenated (in time order)."""
    by_char: dict[str, dict[str, list[str]]] = {}
    for unit in units:
        name = rename(unit.character) if rename else unit.character
        slot = by_char.setdefault(name, {})
        for f in fields:
            if f != "character":
                slot.setdefault(f, []).append(unit.text(f))
    items: Items = {}
    for f in fields:
        if f == "character":
            items[f] = [name for name in by_char if name]
        else:
            items[f] = [t for t in (join_texts(slot.get(f, [])) for slot in by_char.values()) if t]
    return items


def merge_scene_items(units: Sequence[Unit], fields: Sequence[str]) -> Items:
    """One item per distinct (normalised) value of each field."""
    items: Items = {}
    for f in fields:
        seen: dict[str, str] = {}
        for unit in units:
            text = unit.text(f)
            if normalise(text):
                seen.setdefault(normalise(text), text)
        items[f] = list(seen.values())
    return items


def greedy_match(sim: list[list[float]]) -> tuple[float, list[tuple[int, int, float]]]:
    """Greedy one-to-one matching on a GT × pred similarity matrix: the sum and the (gt, pred, s) matches."""
    cells = sorted(
        ((-s, i, j) for i, row in enumerate(sim) for j, s in enumerate(row) if s > 0), key=lambda c: c
    )
    used_i: set[int] = set()
    used_j: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for neg, i, j in cells:
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        matches.append((i, j, -neg))
    return sum(s for _, _, s in matches), matches


def score_fields(
    groups: Sequence[Group],
    gt: Sequence[Unit],
    pred: Sequence[Unit],
    fields: Sequence[str],
    judge: Judge,
    *,
    level: str = "event",
    rename: Callable[[str], str] | None = None,
) -> dict[str, Counts]:
    """Per-field S_total, N_pred_total and N_gt_total of one video (see the module docstring)."""
    merged: list[tuple[Items, Items | None]] = []
    for group in groups:
        gt_units = [gt[i] for i in group.gt]
        pred_units = [pred[j] for j in group.pred]
        if level == "event":
            gt_items = merge_event_items(gt_units, fields) if gt_units else None
            pred_items = merge_event_items(pred_units, fields, rename) if pred_units else None
        else:
            gt_items = merge_scene_items(gt_units, fields) if gt_units else None
            pred_items = merge_scene_items(pred_units, fields) if pred_units else None
        if gt_items is None:
            continue  # hallucination: no field counts (stage 4 penalises it)
        merged.append((gt_items, pred_items))

    judged = [f for f in fields if f not in ("character", "dialogue")]
    judge_scores: dict[str, dict[tuple[str, str], float]] = {}
    for f in judged:
        pairs = list(
            dict.fromkeys((g, p) for gi, pi in merged if pi is not None for g in gi[f] for p in pi[f])
        )
        scores = {pair: 1.0 for pair in pairs if normalise(pair[0]) == normalise(pair[1])}  # never asked
        asked = [pair for pair in pairs if pair not in scores]
        if asked:
            scores.update(zip(asked, judge.similarity(f, asked), strict=True))
        judge_scores[f] = scores

    def similarity(f: str, g: str, p: str) -> float:
        if f == "character":
            return 1.0 if g == p else 0.0
        if f == "dialogue":
            return text_sim(g, p)
        return judge_scores[f][(g, p)]

    counts = {f: Counts() for f in fields}
    for gt_items, pred_items in merged:
        for f in fields:
            c = counts[f]
            c.n_gt += len(gt_items[f])
            if pred_items is None:
                continue
            c.n_pred += len(pred_items[f])
            matrix = [[similarity(f, g, p) for p in pred_items[f]] for g in gt_items[f]]
            c.score += greedy_match(matrix)[0]
    return counts
