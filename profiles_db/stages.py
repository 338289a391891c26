"""Jobs, videos, segments and stage runs: progress, leases and resume state (DESIGN.md §4, §8)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from annotator.schemas.usage import StageUsage
from profiles_db.cpm.state import scope_positions
from profiles_db.db import Database
from profiles_db.models import Job, Segment, StageRun, Video

STAGES = ("plot", "script", "distill", "export")
FINAL = {"done", "rejected"}
DEFAULT_LEASE_S = 900.0  # longer than the slowest model call with its retries; V2S_LEASE_S overrides
DEFAULT_STAGE_ATTEMPTS = 3  # V2S_STAGE_ATTEMPTS: tries of a stage (a lost worker or an error counts one)
# Outcomes that a resume does not re-send by default: the same request gets the same answer (a SAFETY or
# RECITATION block, a prompt block). They need a fallback (a shorter window, a lower resolution, another
# model: DESIGN §11), or `v2s resume --only-reason blocked` to try again on purpose.
DETERMINISTIC_OUTCOMES = frozenset({"blocked"})
GIVEN_UP = "given_up"  # outcome of a plot stage given up by the user: the chain goes on without it

ClaimState = Literal["claimed", "finished", "failed", "leased"]


class StageStore:
    def __init__(
        self, db: Database, *, lease_s: float | None = None, max_attempts: int | None = None
    ) -> None:
        # Settings come from the environment so every Ray worker of a job sees the same ones (runtime_env).
        self.db = db
        self.lease_s = (
            lease_s if lease_s is not None else float(os.environ.get("V2S_LEASE_S", DEFAULT_LEASE_S))
        )
        self.max_attempts = (
            max_attempts
            if max_attempts is not None
            else int(os.environ.get("V2S_STAGE_ATTEMPTS", DEFAULT_STAGE_ATTEMPTS))
        )

    # -- jobs and videos --------------------------------------------------------------------------
    def ensure_job(self, job_id: str, source: str, out: str, config: dict[str, Any]) -> None:
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is None:
                s.add(Job(id=job_id, source=source, out=out, config=config, status="running"))
            else:
                job.status = "running"

    def finish_job(self, job_id: str, status: str, *, only_if: str | None = None) -> None:
        """Set the job's status (`only_if`: only while it still has that status, e.g. a crashed run marks its
        job failed only if nobody cancelled it meanwhile)."""
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is not None and (only_if is None or job.status == only_if):
                job.status = status

    def register_video(self, video_id: str, uri: str, scope: str, episode: int | None, job_id: str) -> str:
        """Insert or re-attach a video; returns its status (a done video is not redone)."""
        with self.db.transaction() as s:
            video = s.get(Video, video_id)
            if video is None:
                s.add(
                    Video(id=video_id, uri=uri, scope=scope, episode=episode, job_id=job_id, status="pending")
                )
                return "pending"
            video.job_id = job_id
            if video.status == "failed":  # a new job gives a broken input another chance
                video.status, video.error = "pending", None
            return video.status

    def set_video(self, video_id: str, **fields: Any) -> None:
        with self.db.transaction() as s:
            video = s.get(Video, video_id)
            for key, value in fields.items():
                setattr(video, key, value)

    def settle_videos(self, video_ids: list[str]) -> list[str]:
        """Mark done the videos whose every segment is exported or finally rejected; returns those ids."""
        settled = []
        with self.db.transaction() as s:
            for video_id in video_ids:
                segments = s.scalars(select(Segment.id).where(Segment.video_id == video_id)).all()
                if not segments:
                    continue
                finished = s.scalar(
                    select(func.count(func.distinct(StageRun.segment_id))).where(
                        StageRun.segment_id.in_(segments),
                        ((StageRun.stage == "export") & (StageRun.status == "done"))
                        | (StageRun.status == "rejected"),
                    )
                )
                if finished == len(segments):
                    s.get(Video, video_id).status = "done"
                    settled.append(video_id)
        return settled

    def segment_spans(self, video_id: str) -> list[tuple[tuple[float, float], str | None]]:
        """The video's planned segments as ((start_s, end_s), proxy_uri), in order; empty before the split."""
        with self.db.sessions() as s:
            rows = s.execute(
                select(Segment.start_s, Segment.end_s, Segment.proxy_uri)
                .where(Segment.video_id == video_id)
                .order_by(Segment.idx)
            ).all()
        return [((r.start_s, r.end_s), r.proxy_uri) for r in rows]

    def save_segments(self, video_id: str, spans: list[tuple[float, float, str]]) -> list[int]:
        """Segments are planned once per video; a later run reuses them (so record ids stay stable)."""
        with self.db.transaction() as s:
            existing = s.scalars(
                select(Segment).where(Segment.video_id == video_id).order_by(Segment.idx)
            ).all()
            if not existing:
                for idx, (start, end, proxy) in enumerate(spans, start=1):
                    s.add(Segment(video_id=video_id, idx=idx, start_s=start, end_s=end, proxy_uri=proxy))
                s.flush()
                existing = s.scalars(
                    select(Segment).where(Segment.video_id == video_id).order_by(Segment.idx)
                ).all()
            return [seg.id for seg in existing]

    # -- stage runs --------------------------------------------------------------------------------
    def claim(self, segment_id: int, stage: str, owner: str, job_id: str | None = None) -> bool:
        """Take a stage with a lease. False when it is finished, failed for good, or leased to a live worker."""
        return self.try_claim(segment_id, stage, owner, job_id)[0] == "claimed"

    def try_claim(
        self, segment_id: int, stage: str, owner: str, job_id: str | None = None
    ) -> tuple[ClaimState, float]:
        """(state, seconds until the current lease expires — only meaningful for "leased").

        The same owner (a retried Ray task keeps its task id) takes its own lease back at once. An expired
        lease counts as a failed attempt: its worker died; after max_attempts such losses (or errors) the
        stage is failed for good with the reason, and the job goes on without it."""
        now = datetime.now(UTC)
        with self.db.transaction() as s:
            run = self._locked_run(s, segment_id, stage)
            if run.status in FINAL:
                return "finished", 0.0
            if run.status == "running" and run.lease_owner != owner and run.lease_expires:
                left = (aware(run.lease_expires) - now).total_seconds()
                if left > 0:
                    return "leased", left
                if (run.attempts or 0) >= self.max_attempts:
                    run.status, run.outcome = "failed", "lost"
                    run.error = (
                        f"worker lost: lease of {run.lease_owner} expired, {run.attempts} attempts used"
                    )
                    run.lease_owner, run.lease_expires = None, None
                    return "failed", 0.0
            # a deterministic block is not retried by a rerun: only a resume that asks for it resets it
            if run.status == "failed" and (
                (run.attempts or 0) >= self.max_attempts or run.outcome in DETERMINISTIC_OUTCOMES
            ):
                return "failed", 0.0
            if not (run.status == "running" and run.lease_owner == owner):
                run.attempts = (run.attempts or 0) + 1
            run.status, run.lease_owner = "running", owner
            run.lease_expires = now + timedelta(seconds=self.lease_s)
            run.job_id = job_id or run.job_id
            return "claimed", 0.0

    @staticmethod
    def _locked_run(s, segment_id: int, stage: str) -> StageRun:
        """The stage's row, created if missing, locked for this transaction: concurrent claimers queue here
        (PostgreSQL: INSERT … ON CONFLICT DO NOTHING then SELECT … FOR UPDATE; SQLite: BEGIN IMMEDIATE)."""
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        s.execute(
            insert(StageRun)
            .values(segment_id=segment_id, stage=stage, attempts=0, status="pending")
            .on_conflict_do_nothing(index_elements=["segment_id", "stage"])
        )
        return s.scalar(
            select(StageRun)
            .where(StageRun.segment_id == segment_id, StageRun.stage == stage)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def claim_waiting(
        self, segment_id: int, stage: str, owner: str, job_id: str | None = None, *, poll_s: float = 1.0
    ) -> ClaimState:
        """claim, waiting out another worker's lease: a plot chain may not skip a segment whose worker died."""
        import time

        while True:
            state, left = self.try_claim(segment_id, stage, owner, job_id)
            if state != "leased":
                return state
            time.sleep(min(max(left, 0.05), poll_s))

    def complete(
        self, segment_id: int, stage: str, result: dict | None, usage: StageUsage | None = None
    ) -> None:
        self._finish(segment_id, stage, "done", "done", None, result, usage)

    def fail(
        self,
        segment_id: int,
        stage: str,
        error: str,
        *,
        outcome: str = "error",
        rejected: bool = False,
        usage: StageUsage | None = None,
        result: dict | None = None,
    ) -> None:
        self._finish(segment_id, stage, "rejected" if rejected else "failed", outcome, error, result, usage)

    def _finish(self, segment_id, stage, status, outcome, error, result, usage) -> None:
        with self.db.transaction() as s:
            run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))
            if run is None:
                run = StageRun(segment_id=segment_id, stage=stage, attempts=1)
                s.add(run)
            run.status, run.outcome, run.error = status, outcome, error
            run.lease_owner, run.lease_expires = None, None
            if result is not None:
                run.result = result
            if usage is not None:
                run.model, run.prompt_version = usage.model, usage.prompt_version
                run.input_tokens = (run.input_tokens or 0) + usage.input_tokens
                run.output_tokens = (run.output_tokens or 0) + usage.output_tokens
                run.cost_usd = (run.cost_usd or 0.0) + usage.cost_usd

    def reset_attempts(self, job_id: str | None = None, only_reasons: set[str] | None = None) -> int:
        """For resume: failed stages (of the job's videos, or all) get a fresh set of attempts.

        `only_reasons`: only stages whose outcome is one of these; by default every outcome but the
        deterministic ones (DETERMINISTIC_OUTCOMES), which would fail the same way again. The error text stays
        until the stage runs again, so `v2s status` still says why it failed."""
        with self.db.transaction() as s:
            query = select(StageRun).where(StageRun.status == "failed")
            if job_id:
                query = query.where(StageRun.segment_id.in_(self._job_segments(job_id)))
            runs = [
                run
                for run in s.scalars(query).all()
                if (
                    run.outcome in only_reasons if only_reasons else run.outcome not in DETERMINISTIC_OUTCOMES
                )
            ]
            for run in runs:
                run.attempts, run.status, run.lease_owner, run.lease_expires = 0, "pending", None, None
            if job_id:  # a failed input gets another chance too
                for video in s.scalars(select(Video).where(Video.job_id == job_id, Video.status == "failed")):
                    video.status, video.error = "pending", None
            return len(runs)

    def find_segment(self, ref: str, job_id: str | None = None) -> int:
        """A segment by its id, or by VIDEO_ID:IDX (as `v2s status` prints them); ValueError naming `ref`."""
        with self.db.sessions() as s:
            query = select(Segment.id)
            if ":" in ref:
                video_id, _, idx = ref.rpartition(":")
                if not idx.isdigit():
                    raise ValueError(f"segment {ref!r}: give a segment id or VIDEO_ID:IDX")
                query = query.where(Segment.video_id == video_id, Segment.idx == int(idx))
            elif ref.isdigit():
                query = query.where(Segment.id == int(ref))
            else:
                raise ValueError(f"segment {ref!r}: give a segment id or VIDEO_ID:IDX")
            if job_id:
                query = query.where(Segment.id.in_(self._job_segments(job_id)))
            found = s.scalar(query)
        if found is None:
            raise ValueError(
                f"segment {ref!r} is not a segment of job {job_id}" if job_id else f"no segment {ref!r}"
            )
        return found

    def give_up(self, segment_ids: list[int], reason: str = "given up by the user") -> list[int]:
        """Give up the plot of these segments on purpose: the memory chain of their scope goes on without them
        and their videos are exported (the records say so in meta.memory_gaps); they get no record."""
        done = []
        with self.db.transaction() as s:
            for segment_id in segment_ids:
                run = self._locked_run(s, segment_id, "plot")
                if run.status == "done":
                    continue  # nothing to give up
                run.status, run.outcome, run.error = (
                    "rejected",
                    GIVEN_UP,
                    f"{reason} (was: {run.error or run.status})",
                )
                run.lease_owner, run.lease_expires = None, None
                done.append(segment_id)
        return done

    def chain(self, scope: str) -> list[tuple[int, str, str | None]]:
        """The scope's plot chain in memory order: (segment id, plot status, outcome)."""
        with self.db.sessions() as s:
            positions = scope_positions(s, scope)
            runs = dict(
                s.execute(
                    select(StageRun.segment_id, StageRun).where(
                        StageRun.segment_id.in_(list(positions)), StageRun.stage == "plot"
                    )
                ).all()
            )
        ordered = sorted(positions, key=positions.__getitem__)
        return [
            (sid, runs[sid].status if sid in runs else "pending", runs[sid].outcome if sid in runs else None)
            for sid in ordered
        ]

    def chain_complete(self, scope: str) -> bool:
        """Every plot of the scope is done or given up: its names are final, its videos may be exported."""
        return all(status in FINAL for _, status, _ in self.chain(scope))

    def memory_gaps(self, scope: str) -> list[tuple[str, int]]:
        """(video id, segment idx) of the scope's given-up plots, in memory order."""
        given_up = [sid for sid, status, outcome in self.chain(scope) if status == "rejected"]
        if not given_up:
            return []
        with self.db.sessions() as s:
            rows = dict(
                (sid, (vid, idx))
                for sid, vid, idx in s.execute(
                    select(Segment.id, Segment.video_id, Segment.idx).where(Segment.id.in_(given_up))
                )
            )
        return [rows[sid] for sid in given_up]

    def job_outcome(self, job_id: str) -> str:
        """done: every stage of every segment of the job's videos is done or rejected and no input failed;
        partial: something failed or is unfinished but records were written; failed: nothing was written."""
        with self.db.sessions() as s:
            segments = s.scalars(self._job_segments(job_id)).all()
            failed_inputs = s.scalar(
                select(func.count())
                .select_from(Video)
                .where(Video.job_id == job_id, Video.status == "failed")
            )
            finished = s.scalar(
                select(func.count(func.distinct(StageRun.segment_id))).where(
                    StageRun.segment_id.in_(segments),
                    ((StageRun.stage == "export") & (StageRun.status == "done"))
                    | (StageRun.status == "rejected"),
                )
            )
            exported = s.scalar(
                select(func.count())
                .select_from(StageRun)
                .where(
                    StageRun.segment_id.in_(segments), StageRun.stage == "export", StageRun.status == "done"
                )
            )
        if not failed_inputs and finished == len(segments):
            return "done"
        return "partial" if exported else "failed"

    @staticmethod
    def _job_segments(job_id: str):
        return select(Segment.id).join(Video, Video.id == Segment.video_id).where(Video.job_id == job_id)

    def scope_segments(self, scope: str, video_ids: list[str]) -> list[int]:
        """The segments of these videos in the scope's plot order — the CPM's own rule (profiles_db/cpm/state.py)."""
        with self.db.sessions() as s:
            positions = scope_positions(s, scope)
            wanted = (
                set(s.scalars(select(Segment.id).where(Segment.video_id.in_(video_ids))).all())
                if video_ids
                else set()
            )
        return sorted((sid for sid in positions if sid in wanted), key=positions.__getitem__)

    # -- job control ---------------------------------------------------------------------------------
    def job(self, job_id: str) -> Job | None:
        with self.db.sessions() as s:
            return s.get(Job, job_id)

    def latest_job(self) -> Job | None:
        with self.db.sessions() as s:
            return s.scalars(select(Job).order_by(Job.created_at.desc())).first()

    def job_status(self, job_id: str) -> str | None:
        job = self.job(job_id)
        return None if job is None else job.status

    def result(self, segment_id: int, stage: str) -> tuple[str, dict | None]:
        with self.db.sessions() as s:
            run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))
            return ("pending", None) if run is None else (run.status, run.result)

    def statuses(self, segment_id: int) -> dict[str, str]:
        with self.db.sessions() as s:
            runs = s.scalars(select(StageRun).where(StageRun.segment_id == segment_id)).all()
            return {run.stage: run.status for run in runs}

    def progress(self, job_id: str | None = None) -> dict[str, dict[str, int]]:
        """{stage: {status: count}} over the job's segments (all segments when job_id is None)."""
        with self.db.sessions() as s:
            query = select(StageRun.stage, StageRun.status, func.count()).group_by(
                StageRun.stage, StageRun.status
            )
            if job_id:
                query = (
                    query.join(Segment, Segment.id == StageRun.segment_id)
                    .join(Video)
                    .where(Video.job_id == job_id)
                )
            out: dict[str, dict[str, int]] = {}
            for stage, status, count in s.execute(query):
                out.setdefault(stage, {})[status] = count
            return out

    def usage(self, job_id: str | None = None) -> dict[str, float]:
        with self.db.sessions() as s:
            query = select(
                func.coalesce(func.sum(StageRun.input_tokens), 0),
                func.coalesce(func.sum(StageRun.output_tokens), 0),
                func.coalesce(func.sum(StageRun.cost_usd), 0.0),
            )
            if job_id:
                query = (
                    query.join(Segment, Segment.id == StageRun.segment_id)
                    .join(Video)
                    .where(Video.job_id == job_id)
                )
            i, o, c = s.execute(query).one()
            return {"input_tokens": int(i), "output_tokens": int(o), "cost_usd": float(c)}


def aware(value: datetime) -> datetime:
    """A timestamp as UTC-aware (SQLite hands them back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def usage_breakdown(db: Database, job_id: str | None) -> dict[str, dict[str, dict[str, float]]]:
    """{"stage": {plot: {...}}, "video": {uri: {...}}} of tokens in/out and cost, for `v2s status`."""
    out: dict[str, dict[str, dict[str, float]]] = {"stage": {}, "video": {}}
    with db.sessions() as s:
        for key, column in (("stage", StageRun.stage), ("video", Video.uri)):
            query = (
                select(
                    column,
                    func.coalesce(func.sum(StageRun.input_tokens), 0),
                    func.coalesce(func.sum(StageRun.output_tokens), 0),
                    func.coalesce(func.sum(StageRun.cost_usd), 0.0),
                )
                .join(Segment, Segment.id == StageRun.segment_id)
                .join(Video, Video.id == Segment.video_id)
                .group_by(column)
                .order_by(column)
            )
            if job_id:
                query = query.where(Video.job_id == job_id)
            for name, i, o, c in s.execute(query):
                out[key][name] = {"input_tokens": int(i), "output_tokens": int(o), "cost_usd": float(c)}
    return out
