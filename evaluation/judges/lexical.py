"""The default judge: offline and deterministic."""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.judges.categories import fast_score
from evaluation.names import CharacterJudgement, classify_name, lexical_proper_pairs
from evaluation.text import lexical_sim


class LexicalJudge:
    """Offline, deterministic judge (the default)."""

    name = "lexical"

    def similarity(self, field: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        for gt, pred in pairs:
            fast = fast_score(field, gt, pred)
            if fast is not None:
                out.append(fast)
            elif field == "type":  # categorical: strict
                out.append(0.0)
            else:
                out.append(lexical_sim(gt, pred))
        return out

    def resolve_characters(self, gt_names: Sequence[str], pred_names: Sequence[str]) -> CharacterJudgement:
        categories = {n: classify_name(n) for n in [*gt_names, *pred_names]}
        return CharacterJudgement(
            categories, lexical_proper_pairs(list(gt_names), list(pred_names), categories)
        )
