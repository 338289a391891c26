"""A scope's plot chain as the stage state sees it: its order, how far it got, where it waits."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from profiles_db.models import Segment, StageRun, Video, video_in_job
from profiles_db.scope_order import scope_positions
from profiles_db.stages.states import FINAL, RunStatus, Stage


def given_up_plots(s: Session, segment_ids: Iterable[int]) -> set[int]:
    """Of these segments, those whose plot was given up (inside the caller's transaction: the CPM's order
    check reads it while it holds the scope's lock)."""
    return set(
        s.scalars(
            select(StageRun.segment_id).where(
                StageRun.segment_id.in_(list(segment_ids)),
                StageRun.stage == Stage.PLOT,
                StageRun.status == RunStatus.REJECTED,
            )
        )
    )


class ChainMixin:
    """Part of StageStore (it provides db)."""

    def chain(self, scope: str) -> list[tuple[int, str, str | None]]:
        """The scope's plot chain in memory order: (segment id, plot status, outcome)."""
        with self.db.sessions() as s:
            positions = scope_positions(s, scope)
            runs = dict(
                s.execute(
                    select(StageRun.segment_id, StageRun).where(
                        StageRun.segment_id.in_(list(positions)), StageRun.stage == Stage.PLOT
                    )
                ).all()
            )
        ordered = sorted(positions, key=positions.__getitem__)
        return [
            (sid, runs[sid].status, runs[sid].outcome) if sid in runs else (sid, RunStatus.PENDING, None)
            for sid in ordered
        ]

    def chain_complete(self, scope: str) -> bool:
        """Every plot of the scope is done or given up: its names are final, its videos may be exported."""
        return all(status in FINAL for _, status, _ in self.chain(scope))

    def memory_gaps(self, scope: str) -> list[tuple[str, int]]:
        """(video id, segment idx) of the scope's given-up plots, in memory order."""
        given_up = [sid for sid, status, _ in self.chain(scope) if status == RunStatus.REJECTED]
        if not given_up:
            return []
        with self.db.sessions() as s:
            rows = {
                sid: (vid, idx)
                for sid, vid, idx in s.execute(
                    select(Segment.id, Segment.video_id, Segment.idx).where(Segment.id.in_(given_up))
                )
            }
        return [rows[sid] for sid in given_up]

    def scope_segments(self, scope: str, video_ids: list[str]) -> list[int]:
        """The segments of these videos in the scope's plot order — the CPM's own rule (profiles_db/scope_order.py)."""
        with self.db.sessions() as s:
            positions = scope_positions(s, scope)
            wanted = (
                set(s.scalars(select(Segment.id).where(Segment.video_id.in_(video_ids))).all())
                if video_ids
                else set()
            )
        return sorted((sid for sid in positions if sid in wanted), key=positions.__getitem__)

    def blocked_chains(self, job_id: str | None) -> list[tuple[str, int, str | None, int]]:
        """Scopes whose chain waits at a failed plot: (scope, segment id, outcome, plots after it)."""
        with self.db.sessions() as s:
            query = (
                select(Video.scope)
                .join(Segment, Segment.video_id == Video.id)
                .join(StageRun, StageRun.segment_id == Segment.id)
                .where(StageRun.stage == Stage.PLOT, StageRun.status == RunStatus.FAILED)
                .distinct()
            )
            if job_id:
                query = query.where(video_in_job(job_id))
            scopes = sorted(s.scalars(query))
        blocked = []
        for scope in scopes:
            chain = self.chain(scope)
            stop = next(n for n, (_, status, _) in enumerate(chain) if status == RunStatus.FAILED)
            segment_id, _, outcome = chain[stop]
            blocked.append((scope, segment_id, outcome, len(chain) - stop - 1))
        return blocked
