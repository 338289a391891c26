"""Reads of the stage state: per-segment results, progress and usage, what may be exported, what failed.

Views of progress leave superseded versions out (profiles_db/versions.py): their work is history, not the job's
to finish. Usage keeps them: what was paid stays counted, once, where it was paid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, true

from annotator.schemas.usage import StageUsage
from profiles_db.models import Segment, ShardRecord, StageRun, Video, video_in_job
from profiles_db.stages.states import MODEL_STAGES, RunStatus, Stage, VideoStatus


@dataclass(frozen=True)
class RunView:
    """One stage of one segment, detached from the database."""

    stage: Stage
    status: RunStatus
    outcome: str | None
    result: dict[str, Any] | None
    usage: StageUsage


@dataclass(frozen=True)
class Failure:
    uri: str
    segment_index: int
    stage: str
    status: str
    outcome: str | None
    error: str | None


def _finished(segments):
    """A condition: the stage run finishes its segment (exported, or rejected at some stage)."""
    return StageRun.segment_id.in_(segments) & (
        ((StageRun.stage == Stage.EXPORT) & (StageRun.status == RunStatus.DONE))
        | (StageRun.status == RunStatus.REJECTED)
    )


def _paid_by(job_id: str):
    """A condition on a stage run (joined with its video): this job ran it, or the run names no job and the
    job lists its video."""
    return (StageRun.job_id == job_id) | (StageRun.job_id.is_(None) & video_in_job(job_id))


def _sum_usage(*columns):
    return (
        *columns,
        func.coalesce(func.sum(StageRun.input_tokens), 0),
        func.coalesce(func.sum(StageRun.output_tokens), 0),
        func.coalesce(func.sum(StageRun.cost_usd), 0.0),
    )


def _usage_dict(i, o, c) -> dict[str, float]:
    return {"input_tokens": int(i), "output_tokens": int(o), "cost_usd": float(c)}


class ViewMixin:
    """Part of StageStore (it provides db and job_segments)."""

    def result(self, segment_id: int, stage: Stage) -> tuple[str, dict | None]:
        with self.db.sessions() as s:
            run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))
            return (RunStatus.PENDING, None) if run is None else (run.status, run.result)

    def statuses(self, segment_id: int) -> dict[str, str]:
        with self.db.sessions() as s:
            runs = s.scalars(select(StageRun).where(StageRun.segment_id == segment_id)).all()
            return {run.stage: run.status for run in runs}

    def exportable(self, video_id: str, out: str) -> list[tuple[Segment, dict[Stage, RunView]]]:
        """The video's segments whose model stages are all done and whose record is not in output `out` (its
        key, profiles_db.outputs.output_key) yet, in order. Outputs sharing the database each get every record
        of their sources' videos: one annotated for another job's output is written here from the database."""
        with self.db.sessions() as s:
            segments = s.scalars(
                select(Segment).where(Segment.video_id == video_id).order_by(Segment.idx)
            ).all()
            held = set(
                s.scalars(
                    select(ShardRecord.segment_id).where(
                        ShardRecord.out == out, ShardRecord.segment_id.in_([seg.id for seg in segments])
                    )
                )
            )
            runs = s.scalars(select(StageRun).where(StageRun.segment_id.in_([seg.id for seg in segments])))
            by_segment: dict[int, dict[Stage, RunView]] = {}
            for run in runs:
                view = RunView(
                    Stage(run.stage),
                    RunStatus(run.status),
                    run.outcome,
                    run.result,
                    StageUsage.model_validate(run),
                )
                by_segment.setdefault(run.segment_id, {})[view.stage] = view
        found = []
        for segment in segments:
            stages = by_segment.get(segment.id, {})
            if any(stages.get(k) is None or stages[k].status != RunStatus.DONE for k in MODEL_STAGES):
                continue
            if segment.id in held:
                continue
            found.append((segment, stages))
        return found

    def exported(self) -> list[tuple[int, str | None, str | None]]:
        """Every exported segment of the database: (segment id, shard name, record id)."""
        with self.db.sessions() as s:
            rows = s.execute(
                select(StageRun.segment_id, StageRun.result)
                .join(Segment, Segment.id == StageRun.segment_id)
                .join(Video, Video.id == Segment.video_id)
                .where(
                    StageRun.stage == Stage.EXPORT,
                    StageRun.status == RunStatus.DONE,
                    Video.superseded_by.is_(None),
                )
            ).all()
        return [(sid, (r or {}).get("shard"), (r or {}).get("record_id")) for sid, r in rows]

    def settle_videos(self, video_ids: list[str]) -> list[str]:
        """Mark done the videos whose every segment is exported or finally rejected; returns those ids."""
        settled = []
        with self.db.transaction() as s:
            for video_id in video_ids:
                segments = s.scalars(select(Segment.id).where(Segment.video_id == video_id)).all()
                if not segments:
                    continue
                finished = s.scalar(
                    select(func.count(func.distinct(StageRun.segment_id))).where(_finished(segments))
                )
                if finished == len(segments):
                    s.get(Video, video_id).status = VideoStatus.DONE
                    settled.append(video_id)
        return settled

    def job_outcome(self, job_id: str) -> str:
        """done: every stage of every segment of the job's videos is done or rejected and no input failed;
        partial: something failed or is unfinished but records were written; failed: nothing was written."""
        with self.db.sessions() as s:
            segments = s.scalars(self.job_segments(job_id)).all()
            failed_inputs = s.scalar(
                select(func.count())
                .select_from(Video)
                .where(
                    video_in_job(job_id), Video.status == VideoStatus.FAILED, Video.superseded_by.is_(None)
                )
            )
            finished = s.scalar(
                select(func.count(func.distinct(StageRun.segment_id))).where(_finished(segments))
            )
            exported = s.scalar(
                select(func.count())
                .select_from(StageRun)
                .where(
                    StageRun.segment_id.in_(segments),
                    StageRun.stage == Stage.EXPORT,
                    StageRun.status == RunStatus.DONE,
                )
            )
        if not failed_inputs and finished == len(segments):
            return "done"
        return "partial" if exported else "failed"

    def _of_job(self, query, job_id: str | None):
        """Restrict a query over stage runs to the job's segments."""
        if not job_id:
            return query
        return query.join(Segment, Segment.id == StageRun.segment_id).join(Video).where(video_in_job(job_id))

    def progress(self, job_id: str | None = None) -> dict[str, dict[str, int]]:
        """{stage: {status: count}} over the job's segments (all segments when job_id is None)."""
        query = select(StageRun.stage, StageRun.status, func.count()).group_by(
            StageRun.stage, StageRun.status
        )
        out: dict[str, dict[str, int]] = {}
        if not job_id:  # _of_job joins the videos only for a job
            query = query.join(Segment, Segment.id == StageRun.segment_id).join(Video)
        with self.db.sessions() as s:
            for stage, status, count in s.execute(
                self._of_job(query, job_id).where(Video.superseded_by.is_(None))
            ):
                out.setdefault(stage, {})[status] = count
        return out

    def usage(self, job_id: str | None = None) -> dict[str, float]:
        """Tokens and dollars the job paid (or all jobs): a stage another job ran on a video both list counts
        where it was paid, once."""
        query = select(*_sum_usage()).join(Segment, Segment.id == StageRun.segment_id).join(Video)
        if job_id:
            query = query.where(_paid_by(job_id))
        with self.db.sessions() as s:
            return _usage_dict(*s.execute(query).one())

    def segment_cost(self, segment_id: int) -> float:
        """Dollars recorded for the segment's stages so far (every run of every job: what it has cost)."""
        with self.db.sessions() as s:
            total = s.scalar(
                select(func.coalesce(func.sum(StageRun.cost_usd), 0.0)).where(
                    StageRun.segment_id == segment_id
                )
            )
        return float(total or 0.0)

    def usage_breakdown(self, job_id: str | None) -> dict[str, dict[str, dict[str, float]]]:
        """{"stage": {plot: {...}}, "video": {uri: {...}}, "tier": {standard: {...}}, "model": {name: {...}}} of
        tokens in/out and cost, for `v2s status` (rows from before tiers were recorded were all standard)."""
        out: dict[str, dict[str, dict[str, float]]] = {"stage": {}, "video": {}, "tier": {}, "model": {}}
        tier = func.coalesce(StageRun.tier, "standard")
        groups = (("stage", StageRun.stage), ("video", Video.uri), ("tier", tier), ("model", StageRun.model))
        with self.db.sessions() as s:
            for key, column in groups:
                query = (
                    select(*_sum_usage(column))
                    .join(Segment, Segment.id == StageRun.segment_id)
                    .join(Video, Video.id == Segment.video_id)
                    .group_by(column)
                    .order_by(column)
                )
                # stages that called a model (export rows have neither tier nor model, and no tokens)
                if key in ("tier", "model"):
                    query = query.where((StageRun.input_tokens > 0) | (StageRun.output_tokens > 0))
                if job_id:
                    query = query.where(_paid_by(job_id))
                for name, i, o, c in s.execute(query):
                    out[key][name] = _usage_dict(i, o, c)
        return out

    def failures(self, job_id: str | None) -> list[Failure]:
        """Failed and rejected stages, by video and segment."""
        query = (
            select(Video.uri, Segment.idx, StageRun.stage, StageRun.status, StageRun.outcome, StageRun.error)
            .join(Segment, Segment.id == StageRun.segment_id)
            .join(Video, Video.id == Segment.video_id)
            .where(StageRun.status.in_([RunStatus.FAILED, RunStatus.REJECTED]), Video.superseded_by.is_(None))
            .order_by(Video.uri, Segment.idx, StageRun.stage)
        )
        if job_id:
            query = query.where(video_in_job(job_id))
        with self.db.sessions() as s:
            return [Failure(*row) for row in s.execute(query)]

    def plot_warnings(self, job_id: str | None) -> list[tuple[str, int, list]]:
        """(video uri, segment idx, warnings) of the plots whose CPM apply dropped or cut model values."""
        # only the "warnings" member of the plot results (each also holds the whole plot answer)
        query = (
            select(Video.uri, Segment.idx, StageRun.result["warnings"])
            .join(Segment, Segment.id == StageRun.segment_id)
            .join(Video, Video.id == Segment.video_id)
            .where(StageRun.stage == Stage.PLOT, StageRun.result.is_not(None), Video.superseded_by.is_(None))
            .order_by(Video.uri, Segment.idx)
        )
        if job_id:
            query = query.where(video_in_job(job_id))
        with self.db.sessions() as s:
            return [(uri, idx, w) for uri, idx, w in s.execute(query) if isinstance(w, list) and w]

    def videos(self, job_id: str | None) -> list[tuple[str, str, str | None]]:
        """(uri, status, error) of the job's videos (all videos when job_id is None)."""
        query = select(Video.uri, Video.status, Video.error).where(Video.superseded_by.is_(None))
        if job_id:
            query = query.where(video_in_job(job_id))
        with self.db.sessions() as s:
            return [tuple(row) for row in s.execute(query)]

    def segment_count(self, job_id: str | None) -> int:
        query = select(func.count()).select_from(Segment).join(Video)
        with self.db.sessions() as s:
            return int(
                s.scalar(
                    query.where(video_in_job(job_id) if job_id else true(), Video.superseded_by.is_(None))
                )
            )

    def segment_place(self, segment_id: int) -> tuple[str, int]:
        """(video uri, segment idx) of a segment, as `v2s status` names it."""
        with self.db.sessions() as s:
            return tuple(
                s.execute(select(Video.uri, Segment.idx).join(Segment).where(Segment.id == segment_id)).one()
            )
