"""Reads for `v2s plan`: the segments a plan has to price, and what earlier runs' stages really used."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from profiles_db.models import Segment, StageRun, Video, video_in_job
from profiles_db.stages.states import MODEL_STAGES, RunStatus, VideoStatus


@dataclass(frozen=True)
class PlannedSegment:
    scope: str
    video_id: str
    start_s: float
    end_s: float
    has_audio: bool


@dataclass(frozen=True)
class MeasuredStage:
    """One done model stage of an earlier run: its segment's footage and the tokens the stage used."""

    stage: str
    model: str | None
    seconds: float
    has_audio: bool
    input_tokens: int
    output_tokens: int
    thinking_tokens: int | None = None  # of output_tokens; None: the row did not record it (before 0012)


class HistoryMixin:
    """Part of StageStore (it provides db)."""

    def planned_segments(self, job_id: str) -> list[PlannedSegment]:
        """The segments of the job's videos that still have work (not done), in scope and time order."""
        query = (
            select(Video.scope, Video.id, Segment.start_s, Segment.end_s, Video.has_audio)
            .join(Segment, Segment.video_id == Video.id)
            .where(video_in_job(job_id), Video.status != VideoStatus.DONE)
            .order_by(Video.scope, Video.episode, Video.id, Segment.idx)
        )
        with self.db.sessions() as s:
            return [
                PlannedSegment(scope, vid, start, end, bool(audio))
                for scope, vid, start, end, audio in s.execute(query)
            ]

    def measured_stages(self, exclude_job: str | None = None) -> list[MeasuredStage]:
        """Every done model stage with tokens in the database, outside `exclude_job`'s videos."""
        query = (
            select(
                StageRun.stage,
                StageRun.model,
                Segment.end_s - Segment.start_s,
                Video.has_audio,
                StageRun.input_tokens,
                StageRun.output_tokens,
                StageRun.thinking_tokens,
            )
            .join(Segment, Segment.id == StageRun.segment_id)
            .join(Video, Video.id == Segment.video_id)
            .where(
                StageRun.stage.in_([str(s) for s in MODEL_STAGES]),
                StageRun.status == RunStatus.DONE,
                StageRun.output_tokens > 0,
            )
        )
        if exclude_job:
            query = query.where(~video_in_job(exclude_job))
        with self.db.sessions() as s:
            return [
                MeasuredStage(
                    stage, model, float(seconds), bool(audio), int(i), int(o), None if t is None else int(t)
                )
                for stage, model, seconds, audio, i, o, t in s.execute(query)
            ]
