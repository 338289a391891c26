"""The fine-grained script (paper Fig. 11): meta → scenes → events, plus high points.

One schema for the model's answer (clip-relative "MM:SS" timestamps), the sample film's ground truth
and the exported record (absolute seconds): `Seconds` parses either form.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from annotator.schemas.timecode import Seconds, parse_timestamp

CONTENT_FIELDS = ("dialogue", "action", "expression", "audio_cue")
ENVIRONMENT = "Environment"


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in {"", "null", "none", "n/a"}:
        return None
    return value


class ScriptEvent(_Part):
    timestamp: Seconds
    end_timestamp: Seconds | None = Field(
        default=None, description="optional end; otherwise the next event's start"
    )
    character: str = Field(
        description="character id from the profiles (char_NNN/unknown_NNN) or 'Environment'"
    )
    character_id: str | None = Field(default=None, description="canonical CPM code, filled in at export")
    action: str | None = None
    expression: str | None = None
    dialogue: str | None = None
    voice_type: str | None = Field(default=None, description="VO / OS / NA; omitted for normal dialogue")
    audio_cue: str | None = None
    subtext: str | None = None

    _blanks = field_validator(
        "action", "expression", "dialogue", "voice_type", "audio_cue", "subtext", mode="before"
    )(_blank_to_none)

    @model_validator(mode="after")
    def _has_content(self) -> ScriptEvent:
        if not any(getattr(self, name) for name in CONTENT_FIELDS):
            raise ValueError(f"event at {self.timestamp:.1f}s has none of {', '.join(CONTENT_FIELDS)}")
        return self


class Scene(_Part):
    scene_id: int
    location: str = ""
    type: str = Field(default="", description="Interior / Exterior")
    environment: str = ""
    time: str = ""
    mood: str = ""
    start_timestamp: Seconds | None = None
    end_timestamp: Seconds | None = None
    events: list[ScriptEvent] = Field(default_factory=list)


class HighPointReasoning(_Part):
    visual: str = ""
    audio: str = ""
    text: str = ""
    psychology: str = ""


class HighPoint(_Part):
    id: int | None = Field(default=None, description="optional: OmniScript's own example leaves it out")
    type: str = ""
    time_range: list[Seconds] = Field(default_factory=list, max_length=2)
    description: str = ""
    reasoning: HighPointReasoning = Field(default_factory=HighPointReasoning)
    score: float | None = None


def _hh_mm_ss(value: object) -> object:
    """ "HH:MM:SS" whatever form the duration came in ("MM:SS", seconds), as OmniScript's schema writes it; a
    value that is no time at all is left for the string check to report."""
    if value in (None, ""):
        return ""
    try:
        whole = round(parse_timestamp(value))
    except ValueError:
        return value
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ScriptMeta(_Part):
    title: str = ""
    duration: str = Field(default="", description="HH:MM:SS")
    characters: list[str] = Field(default_factory=list)

    _duration = field_validator("duration", mode="before")(_hh_mm_ss)


class Script(_Part):
    meta: ScriptMeta = Field(default_factory=ScriptMeta)
    script: list[Scene] = Field(default_factory=list)
    high_points: list[HighPoint] = Field(default_factory=list)

    def events(self) -> list[ScriptEvent]:
        return [event for scene in self.script for event in scene.events]

    def missing(self) -> str | None:
        """What a usable script lacks: a malformed answer (its scenes under another key, which is ignored)
        validates as an empty script, and deserves a repair turn rather than a rejection."""
        if not self.events():
            return "the answer has no scene with an event (is `script` a list of scenes, each with `events`?)"
        return None

    def clip_times(self) -> list[tuple[str, float]]:
        """The events' clip-relative times, labelled as the gates and repair turns quote them."""
        return [(f"event {i + 1}", e.timestamp) for i, e in enumerate(self.events())]

    def shifted(self, offset_s: float) -> Script:
        """A copy with every time moved by `offset_s` (clip-relative → absolute)."""
        data = self.model_copy(deep=True)
        for scene in data.script:
            for name in ("start_timestamp", "end_timestamp"):
                if getattr(scene, name) is not None:
                    setattr(scene, name, getattr(scene, name) + offset_s)
            for event in scene.events:
                event.timestamp += offset_s
                if event.end_timestamp is not None:
                    event.end_timestamp += offset_s
        for point in data.high_points:
            point.time_range = [t + offset_s for t in point.time_range]
        return data
