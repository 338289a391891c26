"""One JSONL line per segment (DESIGN.md §7): SFT-ready and self-describing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from annotator.schemas.plot import MainEvent
from annotator.schemas.script import Script


class RecordVideo(BaseModel):
    uri: str
    video_id: str
    start_s: float
    end_s: float
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


class RecordMeta(BaseModel):
    job: str
    pipeline_version: str
    engine_version: str
    models: dict[str, str] = Field(default_factory=dict)
    prompt_versions: dict[str, str] = Field(default_factory=dict)
    tokens: dict[str, int] = Field(default_factory=dict)
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
    video: RecordVideo
    messages: list[Message]
    script: Script = Field(description="timestamps are absolute seconds in the source video")
    thinking: str
    plot: RecordPlot
    characters: list[RecordCharacter]
    meta: RecordMeta
