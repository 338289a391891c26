"""What a judge is: the protocol every judge follows, the fields it scores and the error it raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from evaluation.names import CharacterJudgement

JUDGE_FIELDS = ("action", "expression", "audio_cue", "location", "type", "environment", "time", "mood")
"""Fields scored by a judge (dialogue and character are scored by fixed rules)."""


class JudgeError(RuntimeError):
    """A judge could not score (bad answer, unreachable server, missing settings)."""


@runtime_checkable
class Judge(Protocol):
    name: str

    def similarity(self, field: str, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Similarity in [0, 1] of each (GT text, predicted text) pair for `field`, in order."""
        ...

    def resolve_characters(self, gt_names: Sequence[str], pred_names: Sequence[str]) -> CharacterJudgement:
        """Categories of all names and proposed (pred, GT) proper-name pairs."""
        ...
