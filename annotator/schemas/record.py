"""One JSONL line per segment (DESIGN.md §7): SFT-ready and self-describing.

Every field has one type in every record (docs/training.md): optional values are explicit nulls of a declared
type, lists are typed even when empty, and nothing is an open dict (a dict whose keys vary from record to record
gives each shard a different column set, which Arrow-based loaders cannot concatenate), so the Hugging Face
features in `OUT/README.md` are derived from these models (`annotator.dataset_card`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from annotator.schemas.plot import MainEvent
from annotator.schemas.script import Script

SCHEMA_VERSION = "3.0.0"
"""The record schema's version (semantic: docs/training.md says what bumps which part); every record carries it
and every JSON Schema's `$id` names it."""


class RecordVideo(BaseModel):
    uri: str
    video_id: str
    start_s: float
    end_s: float
    # inside the output: relative to it ("proxies/<video>/seg_0001.mp4"), so a moved output still finds it;
    # elsewhere: an absolute path or a URI
    proxy_uri: str | None = None
    series: str | None = None
    episode: int | None = None
    segment_index: int


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class RecordCharacter(BaseModel):
    code: str
    name: str | None
    status: str
    aliases: list[str] = Field(default_factory=list)
    former_codes: list[str] = Field(default_factory=list)
    appearance: str = ""
    role_type: str = ""


class RecordPlot(BaseModel):
    summary: str = ""
    narrative: str = ""
    continuity_note: str | None = None
    main_events: list[MainEvent] = Field(default_factory=list)


class MemoryGap(BaseModel):
    """A segment of the scope whose plot reasoning was given up: the character memory has a hole there."""

    video_id: str
    segment_index: int


class KeyValue(BaseModel):
    """One entry of what would otherwise be an open dict (stage → model, stage → prompt version)."""

    key: str
    value: str


class RecordTokens(BaseModel):
    input: int = 0
    output: int = 0


class RecordQuality(BaseModel):
    """What the quality gates said about the script: shards hold accepted records (a rejected segment's reasons
    are in `OUT/rejects/`); `v2s export` keeps only accepted ones unless asked otherwise."""

    accepted: bool = True
    problems: list[str] = Field(default_factory=list)


class RecordReview(BaseModel):
    """Who corrected the record's script in review (`v2s export --corrected`): the script and the assistant
    turn's script are the reviewer's; the reasoning is still the one distilled for the engine's script."""

    reviewer: str
    reviewed_at: str = Field(description="ISO 8601, UTC")
    source: str = Field(default="", description="where the review came from, e.g. a Label Studio task")
    changes: int = Field(default=0, description="fields the reviewer changed")


class RecordMeta(BaseModel):
    job: str
    pipeline_version: str
    engine_version: str
    models: list[KeyValue] = Field(default_factory=list, description="stage → model, sorted by stage")
    prompt_versions: list[KeyValue] = Field(
        default_factory=list, description="stage → prompt version, sorted by stage"
    )
    tokens: RecordTokens = Field(default_factory=RecordTokens)
    cost_usd: float = 0.0
    reasoning_content: str | None = Field(
        default=None, description="the distiller's own reasoning, if returned"
    )
    memory_gaps: list[MemoryGap] = Field(
        default_factory=list,
        description="segments of this scope exported without their plot reasoning (given up on purpose)",
    )


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    schema_version: str = SCHEMA_VERSION
    video: RecordVideo
    messages: list[Message]
    script: Script = Field(description="timestamps are absolute seconds in the source video")
    thinking: str
    plot: RecordPlot
    characters: list[RecordCharacter]
    meta: RecordMeta
    quality: RecordQuality = Field(default_factory=RecordQuality)
    review: RecordReview | None = Field(default=None, description="set on rows corrected in review")
