"""The outcomes `v2s resume --only-reason` accepts: every word a failed or gate-rejected stage is stored with.

Built from the gateway's own `Outcome` vocabulary plus the outcomes the engine adds, so a new kind of failure
becomes resumable by name without a second list to keep in step."""

from __future__ import annotations

from typing import get_args

from annotator.gateway.base import Outcome
from profiles_db.stages.states import GATE_REJECTED, LOST, OUT_OF_ORDER

RESUMABLE_REASONS: tuple[str, ...] = tuple(
    dict.fromkeys([*(o for o in get_args(Outcome) if o != "done"), LOST, OUT_OF_ORDER, GATE_REJECTED])
)


class UnknownReasonError(ValueError):
    """An --only-reason that no stage can have: refused rather than silently matching nothing."""


def checked_reasons(given: list[str] | None) -> set[str] | None:
    """The reasons asked for, or None for the default; raises UnknownReasonError naming the valid ones."""
    unknown = sorted({r for r in given or [] if r not in RESUMABLE_REASONS})
    if unknown:
        raise UnknownReasonError(
            f"unknown --only-reason {', '.join(unknown)}; valid reasons: {', '.join(RESUMABLE_REASONS)}"
        )
    return set(given or []) or None
