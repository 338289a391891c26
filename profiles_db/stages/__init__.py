"""The stage state: jobs, videos, segments and stage runs — progress, leases and resume (DESIGN.md §4, §8)."""

from annotator.schemas.usage import StageUsage
from profiles_db.stages.batches import OpenBatch
from profiles_db.stages.history import MeasuredStage, PlannedSegment
from profiles_db.stages.leases import ClaimState
from profiles_db.stages.states import (
    BUDGET,
    DETERMINISTIC_OUTCOMES,
    FINAL,
    GIVEN_UP,
    MODEL_STAGES,
    JobStatus,
    RunStatus,
    Stage,
    StageSettings,
    VideoStatus,
    aware,
    utcnow,
)
from profiles_db.stages.store import StageStore
from profiles_db.stages.views import Failure, RunView

__all__ = [
    "BUDGET",
    "DETERMINISTIC_OUTCOMES",
    "FINAL",
    "GIVEN_UP",
    "MODEL_STAGES",
    "ClaimState",
    "Failure",
    "JobStatus",
    "MeasuredStage",
    "OpenBatch",
    "PlannedSegment",
    "RunStatus",
    "RunView",
    "Stage",
    "StageSettings",
    "StageStore",
    "StageUsage",
    "VideoStatus",
    "aware",
    "utcnow",
]
