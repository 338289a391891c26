"""SQLAlchemy 2.0 models. Table and column names are a user-facing contract (people query them), see docs/sql.md."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    out: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # entries of the source left out at the last listing: [{"uri", "reason"}] (jobs/sources.py)
    skipped_inputs: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending|running|done|failed|cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Video(Base):
    __tablename__ = "videos"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # stable hash of uri+size+mtime
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(512), index=True)  # series name, or the video id
    episode: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|split|done|failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A newer version of the same source (same URI, other bytes) replaced this one (migration 0011): its rows are
    # kept as history, but it is in no job's progress, no scope's chain, no manifest and no export.
    superseded_by: Mapped[str | None] = mapped_column(String(64))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_note: Mapped[str | None] = mapped_column(Text)  # what changed, as `v2s status` says it
    segments: Mapped[list[Segment]] = relationship(back_populates="video", order_by="Segment.idx")


class JobVideo(Base):
    """A job lists this video (migration 0013): a video may be in several jobs' sources; each sees it."""

    __tablename__ = "job_videos"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    video_id: Mapped[str] = mapped_column(
        ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True, index=True
    )


def video_in_job(job_id: str):
    """A condition on Video: the job lists it (the job that listed it last, or any other job that did)."""
    return (Video.job_id == job_id) | Video.id.in_(select(JobVideo.video_id).where(JobVideo.job_id == job_id))


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("video_id", "idx"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    video_id: Mapped[str] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    idx: Mapped[int] = mapped_column(Integer)  # 1-based, in time order
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    proxy_uri: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed|rejected
    video: Mapped[Video] = relationship(back_populates="segments")


class StageRun(Base):
    """One row per (segment, stage): the single source of truth for progress, leases and resume."""

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("segment_id", "stage"),
        Index("ix_stage_runs_job_stage_status", "job_id", "stage", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    stage: Mapped[str] = mapped_column(String(16))  # plot|script|distill|export
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|failed|rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(
        String(24)
    )  # done|truncated|blocked|timeout|invalid_output|error
    model: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    tier: Mapped[str | None] = mapped_column(String(16))  # standard|flex: what the last call was billed at
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # of output_tokens, the model's thinking; NULL on rows written before it was recorded (`v2s plan` then
    # cannot tell thinking from answer, and says so)
    thinking_tokens: Mapped[int | None] = mapped_column(Integer)
    batch_name: Mapped[str | None] = mapped_column(String(256))  # the open provider batch holding its request
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Character(Base):
    __tablename__ = "characters"
    __table_args__ = (UniqueConstraint("scope", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(512), index=True)
    code: Mapped[str] = mapped_column(String(32))  # char_003 / unknown_002
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="provisional")  # provisional|named
    first_seen_segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    last_seen_segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    role_type: Mapped[str] = mapped_column(Text, default="")
    appearance: Mapped[str] = mapped_column(Text, default="")
    voice: Mapped[str] = mapped_column(Text, default="")
    personality: Mapped[str] = mapped_column(Text, default="")
    merged_into: Mapped[int | None] = mapped_column(
        ForeignKey("characters.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CharacterAlias(Base):
    __tablename__ = "character_aliases"
    __table_args__ = (UniqueConstraint("character_id", "normalized"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(String(512), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))


class CharacterObservation(Base):
    """How a profile evolved: every appearance/voice/personality note, never overwritten."""

    __tablename__ = "character_observations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"), index=True)
    source_code: Mapped[str | None] = mapped_column(String(32))  # code the model used when it observed this
    appearance: Mapped[str | None] = mapped_column(Text)
    voice: Mapped[str | None] = mapped_column(Text)
    personality: Mapped[str | None] = mapped_column(Text)
    clothing: Mapped[str | None] = mapped_column(Text)
    timestamps: Mapped[list[Any]] = mapped_column(JSON, default=list)  # absolute seconds seen in the segment
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Relationship(Base):
    __tablename__ = "relationships"
    __table_args__ = (UniqueConstraint("scope", "a_id", "b_id", "label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(512), index=True)
    a_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    b_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(512))
    evidence: Mapped[str] = mapped_column(Text, default="")
    first_segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    last_segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))


class NameEvent(Base):
    __tablename__ = "name_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    character_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    old_code: Mapped[str] = mapped_column(String(32))
    new_code: Mapped[str | None] = mapped_column(String(32))
    old_name: Mapped[str | None] = mapped_column(Text)
    new_name: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Merge(Base):
    __tablename__ = "merges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    into_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text)
    moved: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict
    )  # what was re-pointed, so unmerge can undo it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_reason: Mapped[str | None] = mapped_column(Text)  # who undid it and why (e.g. a review), 0010


class IdentityProposal(Base):
    """The model's word that two records are one person (`same_as`, or `matched_from` on another known code).

    Kept whatever became of it: `merged` (with the merge it caused), `pending` (too weak to act on, or it
    contradicts the records' names: waiting for a reviewer), `rejected` (a rule forbids it: a group and an
    individual, or a merge a human undid)."""

    __tablename__ = "identity_proposals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(512), index=True)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    from_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    into_id: Mapped[int] = mapped_column(ForeignKey("characters.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))  # same_as | matched_from
    confidence: Mapped[str] = mapped_column(String(8))  # high | medium | low
    evidence: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|merged|rejected
    note: Mapped[str] = mapped_column(Text, default="")  # why it was not merged
    merge_id: Mapped[int | None] = mapped_column(ForeignKey("merges.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SegmentPlot(Base):
    __tablename__ = "segment_plots"
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(512), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    narrative: Mapped[str] = mapped_column(Text, default="")
    continuity_note: Mapped[str | None] = mapped_column(Text)
    main_events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    code_map: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict
    )  # model's id → canonical code at apply
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResponseCacheEntry(Base):
    """A validated final answer of one model question, so a resumed job never asks (or pays) twice.

    `key` is the sha256 of (backend, model, prompt version, prompt sha256, media sha256); the parts are kept
    too so people can inspect and purge by model or prompt version. Usage is what the first answer cost."""

    __tablename__ = "response_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128), index=True)
    prompt_version: Mapped[str] = mapped_column(String(64))
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    media_sha256: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    answer: Mapped[dict[str, Any]] = mapped_column(JSON)
    reasoning_content: Mapped[str | None] = mapped_column(Text)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Shard(Base):
    """A closed shard of an output: what the file must be (the manifest is rendered from these rows)."""

    __tablename__ = "shards"
    out: Mapped[str] = mapped_column(String(1024), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    records: Mapped[int] = mapped_column(Integer)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShardRecord(Base):
    """The exact bytes of one exported line (zlib), so a damaged shard is rebuilt without a model call."""

    __tablename__ = "shard_records"
    __table_args__ = (Index("ix_shard_records_segment", "segment_id"),)
    out: Mapped[str] = mapped_column(String(1024), primary_key=True)
    shard: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0-based line number in the shard
    segment_id: Mapped[int] = mapped_column(Integer)
    record_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class SupersededRecord(Base):
    """A record taken out of an output because its video was superseded (migration 0011): the exact line as it
    was exported, where it was, and when it left. History only: nothing reads it back into a shard."""

    __tablename__ = "superseded_records"
    out: Mapped[str] = mapped_column(String(1024), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_id: Mapped[int] = mapped_column(Integer)
    shard: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    superseded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class OutputLock(Base):
    """The one live run allowed to write an output (a lease with a heartbeat, held across machines)."""

    __tablename__ = "output_locks"
    out: Mapped[str] = mapped_column(String(1024), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelBatch(Base):
    """A provider batch job (Gemini `batches/…`, OpenAI `batch_…`) holding stage requests, one per segment.

    Written before the run waits on it: a resumed run polls it instead of paying for the same requests again."""

    __tablename__ = "model_batches"
    __table_args__ = (Index("ix_model_batches_job_state", "job_id", "state"),)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    job_id: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    wave: Mapped[int | None] = mapped_column(Integer)  # plot: the wave of the chains it holds a step of
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # 2+: retries failed items
    state: Mapped[str] = mapped_column(String(16))  # open|done|failed|cancelled|expired
    items: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed_items: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    keys: Mapped[list[Any] | None] = mapped_column(JSON)  # the segment ids of its requests, in request order
    estimated_cost_usd: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- ground truth from review (migration 0010; docs/sql.md) -------------------------------------------------
class GtSegment(Base):
    """A reviewer's corrected script of one segment: the newest review of a segment replaces the older one."""

    __tablename__ = "gt_segments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), unique=True)
    record_id: Mapped[str] = mapped_column(String(64))  # the output record the review started from
    reviewer: Mapped[str] = mapped_column(String(256))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(32))  # labelstudio
    source_ref: Mapped[str] = mapped_column(
        Text, default=""
    )  # e.g. the Label Studio project, task, annotation
    # what the reviewer changed against the record: [{"region", "field", "old", "new"}]
    changes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    scenes: Mapped[list[GtScene]] = relationship(
        back_populates="gt_segment", order_by="GtScene.position", cascade="all, delete-orphan"
    )


class GtScene(Base):
    __tablename__ = "gt_scenes"
    __table_args__ = (UniqueConstraint("gt_segment_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gt_segment_id: Mapped[int] = mapped_column(ForeignKey("gt_segments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based, in time order
    region_id: Mapped[str] = mapped_column(String(64))  # sc1… for the record's scenes, LS's id for new ones
    scene_id: Mapped[int] = mapped_column(Integer)
    location: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(Text, default="")
    environment: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[str] = mapped_column(Text, default="")
    mood: Mapped[str] = mapped_column(Text, default="")
    start_s: Mapped[float | None] = mapped_column(Float)  # absolute seconds in the source video
    end_s: Mapped[float | None] = mapped_column(Float)
    gt_segment: Mapped[GtSegment] = relationship(back_populates="scenes")
    events: Mapped[list[GtEvent]] = relationship(
        back_populates="gt_scene", order_by="GtEvent.position", cascade="all, delete-orphan"
    )


class GtEvent(Base):
    __tablename__ = "gt_events"
    __table_args__ = (UniqueConstraint("gt_scene_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gt_scene_id: Mapped[int] = mapped_column(ForeignKey("gt_scenes.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based within its scene, in time order
    region_id: Mapped[str] = mapped_column(String(64))  # sc1e3… for the record's events
    timestamp_s: Mapped[float] = mapped_column(Float)  # absolute seconds in the source video
    end_s: Mapped[float | None] = mapped_column(Float)
    character: Mapped[str] = mapped_column(Text, default="")  # the name as reviewed ("Environment" too)
    character_code: Mapped[str | None] = mapped_column(String(32))  # the CPM code, resolved on read
    dialogue: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    expression: Mapped[str | None] = mapped_column(Text)
    audio_cue: Mapped[str | None] = mapped_column(Text)
    subtext: Mapped[str | None] = mapped_column(Text)
    voice_type: Mapped[str | None] = mapped_column(String(16))
    gt_scene: Mapped[GtScene] = relationship(back_populates="events")
