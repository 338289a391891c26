"""Counts and ratios: every figure is kept as numerator and denominators so that datasets sum before dividing.

Conventions: precision = score / n_pred and recall = score / n_gt; a ratio whose denominator is 0 is 0.0,
except when *both* denominators are 0 (nothing to find and nothing predicted), where the figure is undefined:
`None` in results, "–" in tables, left out of `Overall` and of the reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counts:
    """S_total (or hits), N_pred and N_gt of one field or one tIoU threshold."""

    score: float = 0.0
    n_pred: int = 0
    n_gt: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.score + other.score, self.n_pred + other.n_pred, self.n_gt + other.n_gt)

    @property
    def defined(self) -> bool:
        return self.n_pred > 0 or self.n_gt > 0

    @property
    def precision(self) -> float | None:
        if not self.defined:
            return None
        return self.score / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float | None:
        if not self.defined:
            return None
        return self.score / self.n_gt if self.n_gt else 0.0

    @property
    def f1(self) -> float | None:
        return f1(self.precision, self.recall)

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "score": round(self.score, 6),
            "n_pred": self.n_pred,
            "n_gt": self.n_gt,
        }


def f1(p: float | None, r: float | None) -> float | None:
    """Harmonic mean of precision and recall; undefined when either is, 0 when both are 0."""
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


@dataclass
class LevelResult:
    """One level (events or scenes): per-field counts and per-threshold temporal counts."""

    fields: dict[str, Counts] = field(default_factory=dict)
    temporal: dict[float, Counts] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=lambda: {"aligned": 0, "miss": 0, "hallucination": 0})

    def __add__(self, other: LevelResult) -> LevelResult:
        names = list(dict.fromkeys([*self.fields, *other.fields]))
        ts = list(dict.fromkeys([*self.temporal, *other.temporal]))
        return LevelResult(
            fields={n: self.fields.get(n, Counts()) + other.fields.get(n, Counts()) for n in names},
            temporal={t: self.temporal.get(t, Counts()) + other.temporal.get(t, Counts()) for t in ts},
            groups={k: self.groups.get(k, 0) + other.groups.get(k, 0) for k in {*self.groups, *other.groups}},
        )

    def overall(self) -> dict[str, float | None]:
        """The paper's `Overall`: the mean of the field F1s (and of the precisions and recalls alike)."""
        counts = list(self.fields.values())
        return {
            "precision": _mean([c.precision for c in counts]),
            "recall": _mean([c.recall for c in counts]),
            "f1": _mean([c.f1 for c in counts]),
        }

    def tiou(self, t: float) -> float | None:
        """tIoU@t (the F1 of the temporal hit rate)."""
        counts = self.temporal.get(t)
        return counts.f1 if counts is not None else None

    def to_dict(self) -> dict[str, object]:
        return {
            "fields": {n: c.to_dict() for n, c in self.fields.items()},
            "overall": self.overall(),
            "temporal": {f"{t:g}": c.to_dict() for t, c in self.temporal.items()},
            "groups": dict(self.groups),
        }
