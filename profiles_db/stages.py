"""Jobs, videos, segments and stage runs: progress, leases and resume state (DESIGN.md §4, §8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from profiles_db.db import Database
from profiles_db.models import Job, Segment, StageRun, Video

STAGES = ("plot", "script", "distill", "export")
FINAL = {"done", "rejected"}


class StageUsage(BaseModel):
    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class StageStore:
    def __init__(self, db: Database, *, lease_s: float = 900.0, max_attempts: int = 3) -> None:
        self.db, self.lease_s, self.max_attempts = db, lease_s, max_attempts

    # -- jobs and videos --------------------------------------------------------------------------
    def ensure_job(self, job_id: str, source: str, out: str, config: dict[str, Any]) -> None:
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is None:
                s.add(Job(id=job_id, source=source, out=out, config=config, status="running"))
            else:
                job.status = "running"

    def finish_job(self, job_id: str, status: str) -> None:
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is not None:
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
        now = datetime.now(UTC)
        with self.db.transaction() as s:
            run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))
            if run is None:
                run = StageRun(segment_id=segment_id, stage=stage, attempts=0, status="pending")
                s.add(run)
            if run.status in FINAL:
                return False
            if run.status == "running" and run.lease_expires and _aware(run.lease_expires) > now:
                return run.lease_owner == owner
            if run.status == "failed" and run.attempts >= self.max_attempts:
                return False
            run.status, run.lease_owner = "running", owner
            run.lease_expires = now + timedelta(seconds=self.lease_s)
            run.attempts = (run.attempts or 0) + 1
            run.job_id = job_id or run.job_id
            return True

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

    def reset_attempts(self, job_id: str | None = None) -> int:
        """For resume: failed stages get a fresh set of attempts."""
        with self.db.transaction() as s:
            runs = s.scalars(select(StageRun).where(StageRun.status == "failed")).all()
            for run in runs:
                run.attempts, run.status = 0, "pending"
            return len(runs)

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


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
