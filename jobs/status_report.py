"""`v2s status --format json`: what the status table shows, as one documented object (docs/cli.md).

The shape is a contract for scripts: fields are only added, never renamed or retyped, without raising
`format_version`. It is read through `StageStore`; the table (`jobs/report.py`) is drawn from this report, so
the two never count differently.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from profiles_db.db import Database
from profiles_db.outputs import jobs_with_live_runs
from profiles_db.stages import JobStatus, RunStatus, Stage, StageStore, VideoStatus
from profiles_db.versions import SupersededSource, superseded_sources
from workers.storage import filesystem, join

STATUS_FORMAT_VERSION = 1


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class JobInfo(BaseModel):
    id: str
    status: str
    source: str
    out: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # SQLite gives the stored UTC back without its zone; the JSON always says it is UTC
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class StageProgress(Usage):
    """Segments of the job in each status of one stage (segments without a row yet count as pending)."""

    stage: Stage
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    rejected: int = 0


class VideoUsage(Usage):
    uri: str


class TierUsage(Usage):
    """What the job spent at one service tier (standard, flex)."""

    tier: str


class ModelUsage(Usage):
    model: str


class ShardsWritten(BaseModel):
    """The output's manifest: `shards`/`records` are null before the first shard is closed, or when the
    manifest cannot be read from here (`error` says why)."""

    job: str
    out: str
    shards: int | None = None
    records: int | None = None
    error: str | None = None


class SkippedInput(BaseModel):
    """An entry of a job's source left out at its last listing (a dangling symlink, an unsupported suffix, a
    folder named like a video, a second path to a file or a copy of one)."""

    job: str
    uri: str
    reason: str


class FailedInput(BaseModel):
    uri: str
    error: str | None = None


class StageFailure(BaseModel):
    uri: str
    segment_index: int
    stage: str
    status: str
    outcome: str | None = None
    error: str | None = None


class BlockedChain(BaseModel):
    """A scope whose memory chain waits at a failed plot: `waiting` later plots are not reasoned."""

    scope: str
    segment_id: int
    uri: str
    segment_index: int
    outcome: str | None = None
    waiting: int


class SegmentWarnings(BaseModel):
    uri: str
    segment_index: int
    warnings: list[str]


class WaitingBatch(BaseModel):
    """A provider batch not yet read back: its requests are paid for when it finishes."""

    name: str
    stage: str
    backend: str
    model: str
    wave: int | None = None
    attempt: int = 1
    items: int
    estimated_cost_usd: float  # its requests' input at the batch price (outputs are not known before)
    age_s: float


class JobBudget(BaseModel):
    """A job with a budget (--budget-usd, --segment-budget-usd): what it may spend and has spent. A job paused
    at its budget also says what to resume it with (`resume_usd`: spent + the expected cost of what is left,
    with a margin, + one task's worst case)."""

    job: str
    limit_usd: float | None = None
    segment_limit_usd: float | None = None
    spent_usd: float
    paused: bool
    resume_usd: float | None = None


class StatusReport(BaseModel):
    format_version: Literal[1] = STATUS_FORMAT_VERSION
    job: str | None = Field(description="the job asked for; null: every job of the database")
    jobs: list[JobInfo]
    videos: dict[str, int] = Field(description="videos per status (pending, split, done, failed)")
    segments: int
    stages: list[StageProgress]
    total: Usage
    per_video: list[VideoUsage]
    per_tier: list[TierUsage] = []
    per_model: list[ModelUsage] = []
    shards: list[ShardsWritten]
    skipped_inputs: list[SkippedInput] = []
    open_batches: list[WaitingBatch] = []
    failed_inputs: list[FailedInput]
    failures: list[StageFailure]
    blocked_chains: list[BlockedChain]
    warnings: list[SegmentWarnings]
    superseded: list[SupersededSource] = Field(
        default=[], description="older versions of the job's sources, closed because the source changed"
    )
    budgets: list[JobBudget] = Field(default=[], description="the jobs with a budget, and what they spent")


def status_report(db: Database, job_id: str | None) -> StatusReport:
    store = StageStore(db)
    jobs = store.jobs(job_id)
    videos = store.videos(job_id)
    segments = store.segment_count(job_id)
    counts: dict[str, int] = {}
    for _, status, _ in videos:
        counts[status] = counts.get(status, 0) + 1
    usage = store.usage_breakdown(job_id)
    live = jobs_with_live_runs(db)
    return StatusReport(
        job=job_id,
        jobs=[
            JobInfo(
                id=j.id,
                # "running" with no run behind it (its lease lapsed): it stopped, resumable
                status=JobStatus.INTERRUPTED
                if j.status == JobStatus.RUNNING and j.id not in live
                else j.status,
                source=j.source,
                out=j.out,
                created_at=j.created_at,
                updated_at=j.updated_at,
            )
            for j in jobs
        ],
        videos=dict(sorted(counts.items())),
        segments=segments,
        stages=_stages(store, job_id, segments, usage["stage"]),
        total=Usage(**store.usage(job_id)),
        per_video=[VideoUsage(uri=uri, **u) for uri, u in usage["video"].items()],
        per_tier=[TierUsage(tier=tier, **u) for tier, u in usage["tier"].items()],
        per_model=[ModelUsage(model=model, **u) for model, u in usage["model"].items() if model],
        shards=[_shards(j.id, j.out) for j in jobs],
        skipped_inputs=[SkippedInput(job=j.id, **entry) for j in jobs for entry in j.skipped_inputs or []],
        open_batches=[
            WaitingBatch(**b.model_dump(exclude={"segment_ids"})) for b in store.open_batches(job_id)
        ],
        failed_inputs=[
            FailedInput(uri=uri, error=error) for uri, status, error in videos if status == VideoStatus.FAILED
        ],
        failures=[StageFailure(**vars(f)) for f in store.failures(job_id)],
        blocked_chains=_blocked(store, job_id),
        warnings=[
            SegmentWarnings(uri=uri, segment_index=idx, warnings=[str(w) for w in found])
            for uri, idx, found in store.plot_warnings(job_id)
        ],
        superseded=_superseded(db, job_id),
        budgets=[b for b in (_budget(store, j) for j in jobs) if b is not None],
    )


def _budget(store: StageStore, job) -> JobBudget | None:
    config = job.config or {}
    limit, ceiling = config.get("budget_usd"), config.get("segment_budget_usd")
    paused = job.status == JobStatus.PAUSED
    if limit is None and ceiling is None and not paused:
        return None
    from jobs.plan import resume_budget  # the estimator, only for a job that has a budget

    spent = float(store.usage(job.id)["cost_usd"])
    return JobBudget(
        job=job.id,
        limit_usd=limit,
        segment_limit_usd=ceiling,
        spent_usd=round(spent, 6),
        paused=paused,
        resume_usd=resume_budget(store, job.id) if paused else None,
    )


def _superseded(db: Database, job_id: str | None) -> list[SupersededSource]:
    with db.sessions() as s:
        found = superseded_sources(s, job_id)
    for entry in found:  # SQLite gives the stored UTC back without its zone
        if entry.superseded_at is not None and entry.superseded_at.tzinfo is None:
            entry.superseded_at = entry.superseded_at.replace(tzinfo=UTC)
    return found


class ManifestUnreadable(Exception):
    """The manifest exists (or may) but cannot be read from here: no bucket credentials, access denied..."""


def read_manifest(out: str) -> dict | None:
    """The output's manifest.json (local folder or bucket), or None before the first shard is closed.
    ManifestUnreadable (one line, no secret) when it cannot be read from this machine."""
    try:
        fs, path = filesystem(join(out, "manifest.json"))
        with fs.open(path, "r") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # botocore's NoCredentialsError, PermissionError, an unreachable endpoint...
        raise ManifestUnreadable(
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def _stages(store: StageStore, job_id: str | None, segments: int, usage: dict) -> list[StageProgress]:
    progress = store.progress(job_id)
    rows = []
    for stage in Stage:
        counts = {str(k): v for k, v in progress.get(stage, {}).items()}
        # as in the table: a segment without a row for this stage has not reached it yet
        counts[RunStatus.PENDING] = counts.get(RunStatus.PENDING, 0) + max(0, segments - sum(counts.values()))
        known = {k: v for k, v in counts.items() if k in StageProgress.model_fields}
        rows.append(StageProgress(stage=stage, **known, **usage.get(stage, {})))
    return rows


def _shards(job: str, out: str) -> ShardsWritten:
    try:
        manifest = read_manifest(out)
    except ManifestUnreadable as exc:
        return ShardsWritten(job=job, out=out, error=str(exc))
    if manifest is None:
        return ShardsWritten(job=job, out=out)
    return ShardsWritten(job=job, out=out, shards=len(manifest["shards"]), records=manifest["records"])


def _blocked(store: StageStore, job_id: str | None) -> list[BlockedChain]:
    chains = []
    for scope, segment_id, outcome, later in store.blocked_chains(job_id):
        uri, idx = store.segment_place(segment_id)
        chains.append(
            BlockedChain(
                scope=scope,
                segment_id=segment_id,
                uri=uri,
                segment_index=idx,
                outcome=None if outcome is None else str(outcome),
                waiting=later,
            )
        )
    return chains
