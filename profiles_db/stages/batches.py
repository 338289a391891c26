"""Provider batches in the stage state: which batch holds a stage's request, so a resumed run polls it.

A batch is recorded (`model_batches`, and `stage_runs.batch_name` of each segment in it) in the same
transaction, right after the provider accepted it; it is closed with its final state once its results are
read. Until then the segments' leases are renewed by the task waiting on it.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy import select, update

from profiles_db.models import ModelBatch, StageRun
from profiles_db.stages.states import Stage, aware


class OpenBatch(BaseModel):
    """A batch still waited on: what `v2s status` lists, and what a resumed run polls."""

    name: str
    stage: str
    backend: str
    model: str
    wave: int | None
    attempt: int
    items: int
    segment_ids: list[int]
    estimated_cost_usd: float
    age_s: float


class BatchMixin:
    """Part of StageStore (it provides db, settings and clock)."""

    def open_batch(
        self,
        name: str,
        *,
        job_id: str | None,
        stage: Stage,
        backend: str,
        model: str,
        segment_ids: list[int],
        wave: int | None = None,
        attempt: int = 1,
        estimated_cost_usd: float = 0.0,
    ) -> None:
        with self.db.transaction() as s:
            if s.get(ModelBatch, name) is None:
                s.add(
                    ModelBatch(
                        name=name,
                        job_id=job_id,
                        stage=stage,
                        backend=backend,
                        model=model,
                        wave=wave,
                        attempt=attempt,
                        state="open",
                        items=len(segment_ids),
                        keys=list(segment_ids),
                        estimated_cost_usd=estimated_cost_usd,
                        created_at=self.clock(),
                    )
                )
            s.execute(
                update(StageRun)
                .where(StageRun.segment_id.in_(segment_ids), StageRun.stage == stage)
                .values(batch_name=name)
            )

    def waiting_batches(self, segment_ids: list[int], stage: Stage) -> list[OpenBatch]:
        """The open batches holding some of these segments' requests of `stage` (only those segments)."""
        now = self.clock()
        with self.db.sessions() as s:
            rows = s.execute(
                select(StageRun.segment_id, ModelBatch)
                .join(ModelBatch, ModelBatch.name == StageRun.batch_name)
                .where(
                    StageRun.segment_id.in_(segment_ids),
                    StageRun.stage == stage,
                    ModelBatch.state == "open",
                )
            ).all()
            found: dict[str, OpenBatch] = {}
            for segment_id, batch in rows:
                if batch.name not in found:
                    found[batch.name] = _view(batch, now, segment_ids=[])
                found[batch.name].segment_ids.append(segment_id)
            return list(found.values())

    def batch_state(self, name: str) -> str | None:
        with self.db.sessions() as s:
            batch = s.get(ModelBatch, name)
            return batch.state if batch is not None else None

    def close_batch(self, name: str, state: str, *, failed_items: int = 0, error: str | None = None) -> None:
        """Its results are read (or it ended without them): no segment waits on it any more."""
        with self.db.transaction() as s:
            batch = s.get(ModelBatch, name)
            if batch is not None:
                batch.state, batch.failed_items, batch.error = state, failed_items, error
                batch.finished_at = self.clock()
            s.execute(update(StageRun).where(StageRun.batch_name == name).values(batch_name=None))

    def renew(self, segment_ids: list[int], stage: Stage, owner: str) -> None:
        """Extend the leases a batch's waiter holds (a batch may take hours; its segments are not lost)."""
        expires = self.clock() + timedelta(seconds=self.settings.lease_s)
        with self.db.transaction() as s:
            s.execute(
                update(StageRun)
                .where(
                    StageRun.segment_id.in_(segment_ids),
                    StageRun.stage == stage,
                    StageRun.lease_owner == owner,
                )
                .values(lease_expires=expires)
            )

    def open_batches(self, job_id: str | None = None) -> list[OpenBatch]:
        now = self.clock()
        with self.db.sessions() as s:
            query = select(ModelBatch).where(ModelBatch.state == "open").order_by(ModelBatch.created_at)
            if job_id is not None:
                query = query.where(ModelBatch.job_id == job_id)
            return [_view(b, now) for b in s.scalars(query)]


def _view(batch: ModelBatch, now, segment_ids: list[int] | None = None) -> OpenBatch:
    created = aware(batch.created_at) if batch.created_at else now
    return OpenBatch(
        name=batch.name,
        stage=batch.stage,
        backend=batch.backend,
        model=batch.model,
        wave=batch.wave,
        attempt=batch.attempt or 1,
        items=batch.items or 0,
        segment_ids=list(batch.keys or []) if segment_ids is None else segment_ids,
        estimated_cost_usd=batch.estimated_cost_usd or 0.0,
        age_s=max(0.0, (now - created).total_seconds()),
    )
