"""A whole video's script: every segment record of one video merged into one script (#32).

The paper's model reads at most a few minutes; the data for long video is a video's whole script, its
storyline and cast. These rows are built from a video's records (`annotator/video_script.py`), never by a new
model call, so they say exactly what the records say.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from annotator.schemas.record import SCHEMA_VERSION, Message, RecordCharacter
from annotator.schemas.script import Script


class VideoSource(BaseModel):
    uri: str
    video_id: str
    series: str | None = None
    episode: int | None = None
    start_s: float = Field(description="where the first record starts, seconds in the source video")
    end_s: float = Field(description="where the last record ends")


class StorylineStep(BaseModel):
    """One segment's place in the plot chain: what happened there, in the plot reasoning's words."""

    segment_index: int
    start_s: float
    end_s: float
    summary: str
    continuity_note: str | None = None


class SegmentGap(BaseModel):
    """A stretch of the video with no record (a segment rejected, failed or given up): the script skips it."""

    start_s: float
    end_s: float


class VideoScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="the video id: one row per video")
    schema_version: str = SCHEMA_VERSION
    video: VideoSource
    messages: list[Message] = Field(description="the whole video → its whole script, for SFT")
    script: Script = Field(description="scenes numbered through the video; times in absolute seconds")
    storyline: list[StorylineStep]
    characters: list[RecordCharacter] = Field(description="the cast with final names")
    segments: list[str] = Field(description="ids of the records merged, in order")
    gaps: list[SegmentGap] = Field(default_factory=list)
    joined_scenes: int = Field(0, description="scenes that ran across a segment boundary, joined into one")
    dropped_repeats: int = Field(0, description="events told on both sides of a boundary, kept once")
