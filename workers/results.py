"""What the Ray tasks of a run hand back to the driver: small typed values, never media or records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from profiles_db.stages import RunStatus, Stage

SKIPPED = "skipped"  # a segment outcome beyond the stage states: nothing ran (its plot is not done)


class PreparedVideo(BaseModel):
    """The outcome of splitting one video."""

    video_id: str
    ok: bool
    skipped: bool = False  # done before (its proxies checked): no model work for this run
    records_missing: bool = False  # done before, but this output lacks some of its records: they are written
    segments: list[int] = []  # the ids of its segments, in time order
    error: str | None = None  # why the input failed (ok is False)
    warning: str | None = None


class SegmentOutcome(BaseModel):
    """The outcome of a segment's plot, or of its script and distillation."""

    segment_id: int
    status: RunStatus | Literal["skipped"]
    stage: Stage | None = None  # the stage that failed or was rejected
    error: str | None = None
    problems: list[str] = []  # quality-gate findings of a rejected script
    reason: str | None = None  # why nothing ran (a skipped segment)

    def why(self) -> str:
        return self.error or "; ".join(self.problems) or self.reason or ""
