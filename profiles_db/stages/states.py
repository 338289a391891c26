"""The names of the stage state machine, in one place: stages, their statuses, and those of videos and jobs.

They are `StrEnum`s, so they are stored in (and compare equal to) the plain strings of the `stage_runs`,
`videos` and `jobs` columns, and older databases need no migration.

    pending ──claim──▶ running ──complete──▶ done
                          │  └────fail─────▶ failed ──(resume resets attempts)──▶ pending
                          └──fail(rejected)▶ rejected        (a quality-gate reject or a plot given up)
    running with an expired lease: the worker died; the next claim takes it over (one attempt used)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Stage(StrEnum):
    PLOT = "plot"
    SCRIPT = "script"
    DISTILL = "distill"
    EXPORT = "export"


MODEL_STAGES = (Stage.PLOT, Stage.SCRIPT, Stage.DISTILL)  # the stages a record is built from


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


class VideoStatus(StrEnum):
    PENDING = "pending"
    SPLIT = "split"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PLANNED = "planned"  # `v2s plan`: its videos split and priced, no model asked
    INTERRUPTED = "interrupted"  # Ctrl-C: stopped, resumable (`v2s resume`)
    # Stopped at its budget (--budget-usd): the next paid call would have passed it. What was in flight finished
    # and its records were written; `v2s resume JOB --budget-usd MORE` goes on from there, paying nothing twice.
    PAUSED = "paused"


FINAL = frozenset({RunStatus.DONE, RunStatus.REJECTED})
# Outcomes that a resume does not re-send by default: the same request gets the same answer (a SAFETY or
# RECITATION block, a prompt block). They need a fallback (a shorter window, a lower resolution, another
# model: DESIGN §11), or `v2s resume --only-reason blocked` to try again on purpose.
DETERMINISTIC_OUTCOMES = frozenset({"blocked"})
GIVEN_UP = "given_up"  # outcome of a plot stage given up by the user: the chain goes on without it
LOST = "lost"  # outcome of a stage whose worker died max_attempts times
OUT_OF_ORDER = "out_of_order"  # outcome of a plot the CPM refused to apply out of chain order
# Outcome of a script the quality gates rejected (status `rejected`): final, so a plain resume leaves it, but
# `v2s resume --only-reason rejected` asks again on purpose, past the response cache's copy of that answer.
GATE_REJECTED = "rejected"
# Outcome of a stage (status `rejected`) not started because its segment's recorded cost had reached the
# per-segment ceiling (--segment-budget-usd): the segment gives up rather than paying for more tries.
BUDGET = "budget"
SUPERSEDED = "superseded"  # outcome of a stage closed because its source changed (profiles_db/versions.py)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """A timestamp as UTC-aware (SQLite hands them back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class StageSettings(BaseModel):
    """How long a claim holds and how often a stage is tried. Read from the environment once, by the job's
    settings (`jobs.settings`), and handed to every worker in the run context."""

    lease_s: float = Field(900.0, gt=0)  # longer than the slowest model call with its retries (V2S_LEASE_S)
    stage_attempts: int = Field(3, ge=1)  # tries of a stage; a lost worker or an error counts one
