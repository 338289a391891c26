"""Claiming a stage with a lease, finishing it, and the resume controls that reset or give up stages."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from annotator.schemas.stage_results import ScriptResult
from annotator.schemas.usage import StageUsage
from profiles_db.models import Segment, StageRun, Video, video_in_job
from profiles_db.response_cache import forget_answer
from profiles_db.stages.states import (
    BUDGET,
    DETERMINISTIC_OUTCOMES,
    FINAL,
    GATE_REJECTED,
    GIVEN_UP,
    LOST,
    RunStatus,
    Stage,
    VideoStatus,
    aware,
)

ClaimState = Literal["claimed", "finished", "failed", "leased"]


class LeaseMixin:
    """Part of StageStore (it provides db, settings and clock)."""

    def claim(self, segment_id: int, stage: Stage, owner: str, job_id: str | None = None) -> bool:
        """Take a stage with a lease. False when it is finished, failed for good, or leased to a live worker."""
        return self.try_claim(segment_id, stage, owner, job_id)[0] == "claimed"

    def try_claim(
        self, segment_id: int, stage: Stage, owner: str, job_id: str | None = None
    ) -> tuple[ClaimState, float]:
        """(state, seconds until the current lease expires — only meaningful for "leased").

        The same owner (a retried Ray task keeps its task id) takes its own lease back at once. An expired
        lease counts as a failed attempt: its worker died; after the allowed attempts such losses (or errors)
        fail the stage for good with the reason, and the job goes on without it."""
        now, attempts = self.clock(), self.settings.stage_attempts
        with self.db.transaction() as s:
            run = self.locked_run(s, segment_id, stage)
            if run.status in FINAL:
                return "finished", 0.0
            if run.status == RunStatus.RUNNING and run.lease_owner != owner and run.lease_expires:
                left = (aware(run.lease_expires) - now).total_seconds()
                if left > 0:
                    return "leased", left
                if (run.attempts or 0) >= attempts:
                    run.status, run.outcome = RunStatus.FAILED, LOST
                    run.error = (
                        f"worker lost: lease of {run.lease_owner} expired, {run.attempts} attempts used"
                    )
                    run.lease_owner, run.lease_expires = None, None
                    return "failed", 0.0
            # a deterministic block is not retried by a rerun: only a resume that asks for it resets it
            if run.status == RunStatus.FAILED and (
                (run.attempts or 0) >= attempts or run.outcome in DETERMINISTIC_OUTCOMES
            ):
                return "failed", 0.0
            if not (run.status == RunStatus.RUNNING and run.lease_owner == owner):
                run.attempts = (run.attempts or 0) + 1
            run.status, run.lease_owner = RunStatus.RUNNING, owner
            run.lease_expires = now + timedelta(seconds=self.settings.lease_s)
            run.job_id = job_id or run.job_id
            return "claimed", 0.0

    def expire_leases_of(self, job_id: str) -> int:
        """End the stage leases this job's earlier run still holds. Called by a run that holds the job's output
        (one live run per output), so those leases belong to a run that is gone: without this, a resume right
        after a crash finds its stages "leased" until they run out. An expired lease counts as a lost attempt,
        as it would have when it ran out. Leases of other jobs are left alone. Returns how many were ended."""
        now = self.clock()
        with self.db.transaction() as s:
            runs = s.scalars(
                select(StageRun)
                .where(StageRun.job_id == job_id, StageRun.status == RunStatus.RUNNING)
                .where(StageRun.lease_expires.is_not(None))
                .with_for_update()
            ).all()
            for run in runs:
                run.lease_expires = now
            return len(runs)

    @staticmethod
    def locked_run(s: Session, segment_id: int, stage: Stage) -> StageRun:
        """The stage's row, created if missing, locked for this transaction: concurrent claimers queue here
        (PostgreSQL: INSERT … ON CONFLICT DO NOTHING then SELECT … FOR UPDATE; SQLite: BEGIN IMMEDIATE)."""
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        s.execute(
            insert(StageRun)
            .values(segment_id=segment_id, stage=stage, attempts=0, status=RunStatus.PENDING)
            .on_conflict_do_nothing(index_elements=["segment_id", "stage"])
        )
        return s.scalar(
            select(StageRun)
            .where(StageRun.segment_id == segment_id, StageRun.stage == stage)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def claim_waiting(
        self, segment_id: int, stage: Stage, owner: str, job_id: str | None = None, *, poll_s: float = 1.0
    ) -> ClaimState:
        """claim, waiting out another worker's lease: a plot chain may not skip a segment whose worker died."""
        while True:
            state, left = self.try_claim(segment_id, stage, owner, job_id)
            if state != "leased":
                return state
            time.sleep(min(max(left, 0.05), poll_s))

    def complete(
        self, segment_id: int, stage: Stage, result: dict | None, usage: StageUsage | None = None
    ) -> None:
        self._finish(segment_id, stage, RunStatus.DONE, "done", None, result, usage)

    def fail(
        self,
        segment_id: int,
        stage: Stage,
        error: str,
        *,
        outcome: str = "error",
        rejected: bool = False,
        usage: StageUsage | None = None,
        result: dict | None = None,
    ) -> None:
        status = RunStatus.REJECTED if rejected else RunStatus.FAILED
        self._finish(segment_id, stage, status, outcome, error, result, usage)

    def _finish(self, segment_id, stage, status, outcome, error, result, usage) -> None:
        with self.db.transaction() as s:
            run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))
            if run is None:
                run = StageRun(segment_id=segment_id, stage=stage, attempts=1)
                s.add(run)
            run.status, run.outcome, run.error = status, outcome, error
            run.lease_owner, run.lease_expires = None, None
            run.batch_name = None
            if result is not None:
                run.result = result
            if usage is not None:
                run.model, run.prompt_version = usage.model, usage.prompt_version
                run.input_tokens = (run.input_tokens or 0) + usage.input_tokens
                run.output_tokens = (run.output_tokens or 0) + usage.output_tokens
                run.cost_usd = (run.cost_usd or 0.0) + usage.cost_usd
                run.cached_tokens = (run.cached_tokens or 0) + usage.cached_tokens
                run.thinking_tokens = (run.thinking_tokens or 0) + usage.thinking_tokens
                run.tier = usage.tier or run.tier

    @staticmethod
    def mark_exported(s: Session, exported: list[tuple[int, str, str]], job_id: str | None = None) -> None:
        """Within the shard writer's commit: these (segment id, shard, record id) are exported, by `job_id`
        (the job whose writer closed the shard, as every other stage run names the job that ran it)."""
        for segment_id, shard, record_id in exported:
            run = s.scalar(
                select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == Stage.EXPORT)
            )
            if run is None:
                run = StageRun(segment_id=segment_id, stage=Stage.EXPORT, attempts=1)
                s.add(run)
            run.status, run.outcome, run.error = RunStatus.DONE, "done", None
            run.result = {"shard": shard, "record_id": record_id}
            run.job_id = job_id or run.job_id

    def reset_attempts(self, job_id: str | None = None, only_reasons: set[str] | None = None) -> int:
        """For resume: failed stages (of the job's videos, or all) get a fresh set of attempts.

        `only_reasons`: only stages whose outcome is one of these; by default every outcome but the
        deterministic ones (DETERMINISTIC_OUTCOMES), which would fail the same way again. GATE_REJECTED, asked
        for by name, also reopens the scripts the quality gates rejected (see `_reopen_gate_rejects`). The error
        text stays until the stage runs again, so `v2s status` still says why it failed."""
        with self.db.transaction() as s:
            query = select(StageRun).where(StageRun.status == RunStatus.FAILED)
            if job_id:
                query = query.where(StageRun.segment_id.in_(self.job_segments(job_id)))
            runs = [
                run
                for run in s.scalars(query).all()
                if (
                    run.outcome in only_reasons if only_reasons else run.outcome not in DETERMINISTIC_OUTCOMES
                )
            ]
            if only_reasons and GATE_REJECTED in only_reasons:
                runs += self._reopen_gate_rejects(s, job_id)
            for run in runs:
                run.attempts, run.status, run.lease_owner, run.lease_expires = (
                    0,
                    RunStatus.PENDING,
                    None,
                    None,
                )
            if job_id:  # a failed input gets another chance too
                failed = select(Video).where(video_in_job(job_id), Video.status == VideoStatus.FAILED)
                for video in s.scalars(failed):
                    video.status, video.error = VideoStatus.PENDING, None
            return len(runs)

    def _reopen_gate_rejects(self, s: Session, job_id: str | None) -> list[StageRun]:
        """The gate-rejected runs of the job, made ready to ask again: their rejected answer leaves the response
        cache (the same request would otherwise get it back, free and rejected again), and their video, settled
        as done with that segment missing, goes back to split so the driver schedules it. Nothing else of the
        video is reset: its plots, other scripts and exported records stay as they are, and are not paid again."""
        query = select(StageRun).where(
            StageRun.status == RunStatus.REJECTED, StageRun.outcome == GATE_REJECTED
        )
        if job_id:
            query = query.where(StageRun.segment_id.in_(self.job_segments(job_id)))
        runs = list(s.scalars(query).all())
        for run in runs:
            # the script the gates rejected, as the response cache keeps it (the same JSON dump of the answer)
            answer = (
                ScriptResult.model_validate(run.result).script.model_dump(mode="json") if run.result else None
            )
            if answer is not None:
                forget_answer(
                    s, stage=run.stage, model=run.model, prompt_version=run.prompt_version, answer=answer
                )
            video = s.scalar(
                select(Video).join(Segment, Segment.video_id == Video.id).where(Segment.id == run.segment_id)
            )
            if video is not None and video.status == VideoStatus.DONE:
                video.status = VideoStatus.SPLIT
        return runs

    def give_up(self, segment_ids: list[int], reason: str = "given up by the user") -> list[int]:
        """Give up the plot of these segments on purpose: the memory chain of their scope goes on without them
        and their videos are exported (the records say so in meta.memory_gaps); they get no record."""
        done = []
        with self.db.transaction() as s:
            for segment_id in segment_ids:
                run = self.locked_run(s, segment_id, Stage.PLOT)
                if run.status == RunStatus.DONE:
                    continue  # nothing to give up
                was = run.error or run.status
                run.status, run.outcome, run.error = RunStatus.REJECTED, GIVEN_UP, f"{reason} (was: {was})"
                run.lease_owner, run.lease_expires = None, None
                done.append(segment_id)
        return done

    def give_up_for_budget(self, segment_id: int, stage: Stage, reason: str) -> bool:
        """The segment's recorded cost reached its ceiling: `stage` is not started and ends `rejected` with
        outcome BUDGET (a plot so rejected is stepped over by its chain, like one given up by hand). False when
        the stage was final already (nothing to give up)."""
        with self.db.transaction() as s:
            run = self.locked_run(s, segment_id, stage)
            if run.status in FINAL:
                return False
            run.status, run.outcome, run.error = RunStatus.REJECTED, BUDGET, reason
            run.lease_owner, run.lease_expires = None, None
            return True
