"""Jobs, videos and their planned segments: what a run registers before any stage runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from profiles_db.models import Job, JobVideo, Segment, Video, video_in_job
from profiles_db.stages.states import JobStatus, VideoStatus


class CatalogMixin:
    """Part of StageStore (it provides db)."""

    def ensure_job(
        self,
        job_id: str,
        source: str,
        out: str,
        config: dict[str, Any],
        skipped: list[dict[str, str]] | None = None,
    ) -> None:
        """Create the job, or mark a resumed one running again with its spec as this run has it (a resume
        may raise its budget); `skipped`: the source's entries this listing left out, with why (a resume lists
        the source again, so it replaces what the last listing found)."""
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is None:
                job = Job(id=job_id, source=source, out=out, config=config, status=JobStatus.RUNNING)
                s.add(job)
            else:
                job.status = JobStatus.RUNNING
                job.config = {**(job.config or {}), **config}
            if skipped is not None:
                job.skipped_inputs = skipped

    def finish_job(self, job_id: str, status: JobStatus, *, only_if: JobStatus | None = None) -> None:
        """Set the job's status (`only_if`: only while it still has that status, e.g. a crashed run marks its
        job failed only if nobody cancelled it meanwhile)."""
        with self.db.transaction() as s:
            job = s.get(Job, job_id)
            if job is not None and (only_if is None or job.status == only_if):
                job.status = status

    def job(self, job_id: str) -> Job | None:
        with self.db.sessions() as s:
            return s.get(Job, job_id)

    def jobs(self, job_id: str | None = None) -> list[Job]:
        """Every job in the order they were created, or just that one."""
        query = select(Job).order_by(Job.created_at)
        if job_id:
            query = query.where(Job.id == job_id)
        with self.db.sessions() as s:
            return list(s.scalars(query))

    def latest_job(self) -> Job | None:
        with self.db.sessions() as s:
            return s.scalars(select(Job).order_by(Job.created_at.desc())).first()

    def job_status(self, job_id: str) -> str | None:
        job = self.job(job_id)
        return None if job is None else job.status

    def register_video(self, video_id: str, uri: str, scope: str, episode: int | None, job_id: str) -> str:
        """Insert or re-attach a video; returns its status (a done video is not redone)."""
        with self.db.transaction() as s:
            video = s.get(Video, video_id)
            if video is not None and s.get(JobVideo, (job_id, video_id)) is None:
                s.add(JobVideo(job_id=job_id, video_id=video_id))  # another job's video: it is this one's too
            if video is None:
                s.add(
                    Video(
                        id=video_id,
                        uri=uri,
                        scope=scope,
                        episode=episode,
                        job_id=job_id,
                        status=VideoStatus.PENDING,
                    )
                )
                s.flush()  # the video before its job link (PostgreSQL checks the foreign key at once)
                s.add(JobVideo(job_id=job_id, video_id=video_id))
                return VideoStatus.PENDING
            video.job_id = job_id
            if video.status == VideoStatus.FAILED:  # a new job gives a broken input another chance
                video.status, video.error = VideoStatus.PENDING, None
            return video.status

    def set_video(self, video_id: str, **fields: Any) -> None:
        with self.db.transaction() as s:
            video = s.get(Video, video_id)
            for key, value in fields.items():
                setattr(video, key, value)

    def video(self, video_id: str) -> Video:
        with self.db.sessions() as s:
            return s.get(Video, video_id)

    def segment(self, segment_id: int) -> tuple[Segment, Video]:
        """A segment and its video, detached (their columns readable after the session)."""
        with self.db.sessions() as s:
            segment = s.get(Segment, segment_id)
            return segment, s.get(Video, segment.video_id)

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
        ordered = select(Segment).where(Segment.video_id == video_id).order_by(Segment.idx)
        with self.db.transaction() as s:
            existing = s.scalars(ordered).all()
            if not existing:
                for idx, (start, end, proxy) in enumerate(spans, start=1):
                    s.add(Segment(video_id=video_id, idx=idx, start_s=start, end_s=end, proxy_uri=proxy))
                s.flush()
                existing = s.scalars(ordered).all()
            return [seg.id for seg in existing]

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
                query = query.where(Segment.id.in_(self.job_segments(job_id)))
            found = s.scalar(query)
        if found is None:
            raise ValueError(
                f"segment {ref!r} is not a segment of job {job_id}" if job_id else f"no segment {ref!r}"
            )
        return found

    @staticmethod
    def job_segments(job_id: str):
        """A subquery: the ids of the segments of the job's videos."""
        # a superseded version of a video (profiles_db/versions.py) is no longer the job's to finish
        return (
            select(Segment.id)
            .join(Video, Video.id == Segment.video_id)
            .where(video_in_job(job_id), Video.superseded_by.is_(None))
        )
