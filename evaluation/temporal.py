"""Stage 4 — temporal boundary evaluation (paper §4.1.4): the tIoU hit rate of the groups.

A group's span on each side is the minimum start to the maximum end of its units. An aligned group is a hit at
threshold t when tIoU(GT span, pred span) ≥ t (up to 1e-9); misses and hallucinations are never hits. Then
    P@t = hits / (aligned + hallucinated groups),  R@t = hits / (aligned + missed groups),  tIoU@t = F1.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.alignment import Group
from evaluation.metrics import Counts
from evaluation.schema import Unit

THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


def span(units: Sequence[Unit], indexes: Sequence[int]) -> tuple[float, float]:
    return min(units[i].start for i in indexes), max(units[i].end for i in indexes)


def tiou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU of two spans; two zero-length spans are 1.0 when equal, else 0.0."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union <= 0:
        return 1.0 if a == b else 0.0
    return inter / union


def temporal_counts(
    groups: Sequence[Group],
    gt: Sequence[Unit],
    pred: Sequence[Unit],
    thresholds: Sequence[float] = THRESHOLDS,
) -> dict[float, Counts]:
    """Hits, predicted-group count and GT-group count per threshold (hits in `Counts.score`)."""
    n_pred = sum(1 for g in groups if g.pred)
    n_gt = sum(1 for g in groups if g.gt)
    ious = [tiou(span(gt, g.gt), span(pred, g.pred)) for g in groups if g.gt and g.pred]
    return {t: Counts(float(sum(1 for v in ious if v >= t - 1e-9)), n_pred, n_gt) for t in thresholds}
