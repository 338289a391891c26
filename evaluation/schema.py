"""Minimal, lenient models that read the script JSON (meta → scenes → events) and the units the metrics use.

`evaluation` imports nothing from the pipeline, so these mirror `annotator/schemas/script.py` on their own:
the same field names, timestamps as "MM:SS", "HH:MM:SS", "MM:SS.s" strings or numbers (seconds), unknown keys
ignored, and no content rules (a ground truth or a prediction is scored as it is, not rejected).

Spans (documented in docs/evaluation.md):
- an event starts at `timestamp`; it ends at its `end_timestamp` when given, else at the next strictly later
  event timestamp in its scene, else at its scene's end;
- a scene starts at `start_timestamp`, else at its first event, else where the previous scene ended (0 for
  the first); it ends at `end_timestamp`, else at the next scene's start, else at the script duration (when
  that is not before its last event), else at its last event's timestamp + `default_tail_s`;
- an end before its start is raised to the start (a zero-length span).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from evaluation.timecode import parse_seconds

EVENT_FIELDS = ("character", "dialogue", "action", "expression", "audio_cue")
"""Event-level fields in the order of the paper's Table 1 (Char., Dia., Act., Exp., Aud.)."""
SCENE_FIELDS = ("location", "type", "environment", "time", "mood")
"""Scene-level fields in the order of the paper's Table 2 (Loc., Type, Env., Time, Mood)."""


def _optional_seconds(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_seconds(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value if v is not None)
    text = str(value).strip()
    return "" if text.lower() in {"null", "none", "n/a"} else text


def _optional_text(value: object) -> str | None:
    return _text(value) or None


Seconds = Annotated[float, BeforeValidator(parse_seconds)]
OptSeconds = Annotated[float | None, BeforeValidator(_optional_seconds)]
Text = Annotated[str, BeforeValidator(_text)]
OptText = Annotated[str | None, BeforeValidator(_optional_text)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Event(_Lenient):
    timestamp: Seconds
    end_timestamp: OptSeconds = None
    character: Text = ""
    character_id: Text = ""
    """the canonical CPM code a record's event carries (set at export); only the identity metric reads it"""
    dialogue: Text = ""
    action: Text = ""
    expression: Text = ""
    audio_cue: Text = ""


class Scene(_Lenient):
    scene_id: int | str | None = None
    location: Text = ""
    type: Text = ""
    environment: Text = ""
    time: Text = ""
    mood: Text = ""
    start_timestamp: OptSeconds = None
    end_timestamp: OptSeconds = None
    events: list[Event] = Field(default_factory=list)


class Script(_Lenient):
    """One script to score. `id` pairs ground truth with prediction; `duration_s` bounds the last scene."""

    id: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    script: list[Scene] = Field(default_factory=list)
    duration_s: OptSeconds = None
    series: OptText = None
    """the series (CPM scope) a video belongs to, from a record's `video.series`; used by the identity metric's
    series scope, where one character keeps its identity across episodes"""

    def duration(self) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        raw = self.meta.get("duration") if isinstance(self.meta, dict) else None
        try:
            return _optional_seconds(raw)
        except ValueError:
            return None


@dataclass(slots=True)
class Unit:
    """One event or one scene as the metrics see it: a span, a character (events) and its field texts."""

    index: int
    start: float
    end: float
    character: str = ""
    texts: dict[str, str] = field(default_factory=dict)
    character_id: str = ""
    """events only: the predicted event's canonical CPM code, when the record has one"""

    def text(self, name: str) -> str:
        return self.texts.get(name, "")


@dataclass(slots=True)
class Units:
    events: list[Unit]
    scenes: list[Unit]


def as_script(value: Script | dict[str, Any] | BaseModel) -> Script:
    """A `Script` from a parsed model (any pydantic script with the same fields), a dict or a `Script`."""
    if isinstance(value, Script):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if not isinstance(value, dict):
        raise TypeError(f"expected a script dict or model, got {type(value).__name__}")
    if isinstance(value.get("script"), dict):  # screenplay: {"title", "duration_s", "cast", "script": {...}}
        inner = dict(value["script"])
        inner.setdefault("duration_s", value.get("duration_s"))
        for key in ("id", "series"):
            if key in value and key not in inner:
                inner[key] = value[key]
        value = inner
    return Script.model_validate(value)


def script_units(script: Script, default_tail_s: float = 5.0) -> Units:
    """Events and scenes of `script` as time-sorted units with the spans defined in the module docstring."""
    spans = _scene_spans(script, default_tail_s)
    events: list[Unit] = []
    scene_units: list[Unit] = []
    for scene, (s_start, s_end) in zip(script.script, spans, strict=True):
        ordered = sorted(scene.events, key=lambda e: e.timestamp)
        events += _event_units(ordered, s_end)
        scene_units.append(_scene_unit(scene, ordered, s_start, s_end))
    return Units(events=_numbered(events), scenes=_numbered(scene_units))


def _scene_spans(script: Script, default_tail_s: float) -> list[tuple[float, float]]:
    """(start, end) of every scene, in script order, by the scene rules of the module docstring."""
    scenes = script.script
    starts: list[float | None] = []
    for scene in scenes:
        first = min((e.timestamp for e in scene.events), default=None)
        starts.append(scene.start_timestamp if scene.start_timestamp is not None else first)
    duration = script.duration()
    spans: list[tuple[float, float]] = []
    previous_end = 0.0
    for k, scene in enumerate(scenes):
        start = starts[k] if starts[k] is not None else previous_end
        last = max((e.timestamp for e in scene.events), default=start)
        following = next((s for s in starts[k + 1 :] if s is not None), None)
        if scene.end_timestamp is not None:
            end = scene.end_timestamp
        elif following is not None:
            end = following
        elif duration is not None and duration > start and duration >= last:
            end = duration
        else:
            end = last + default_tail_s
        end = max(end, start)
        spans.append((start, end))
        previous_end = end
    return spans


def _event_units(ordered: list[Event], scene_end: float) -> list[Unit]:
    """A scene's events (time-sorted) as units, each ending by the event rules of the module docstring."""
    times = [e.timestamp for e in ordered]
    units: list[Unit] = []
    for n, event in enumerate(ordered):
        if event.end_timestamp is not None:
            end = event.end_timestamp
        else:
            later = next((t for t in times[n + 1 :] if t > event.timestamp), None)
            end = later if later is not None else max(scene_end, event.timestamp)
        units.append(
            Unit(
                index=0,
                start=event.timestamp,
                end=max(end, event.timestamp),
                character=event.character,
                character_id=event.character_id,
                texts={
                    "dialogue": event.dialogue,
                    "action": event.action,
                    "expression": event.expression,
                    "audio_cue": event.audio_cue,
                },
            )
        )
    return units


def _scene_unit(scene: Scene, ordered: list[Event], start: float, end: float) -> Unit:
    return Unit(
        index=0,
        start=start,
        end=end,
        texts={
            "location": scene.location,
            "type": scene.type,
            "environment": scene.environment,
            "time": scene.time,
            "mood": scene.mood,
            # scenes are aligned on the dialogue and action of their events (same S_text as events)
            "dialogue": " ".join(e.dialogue for e in ordered if e.dialogue),
            "action": " ".join(e.action for e in ordered if e.action),
        },
    )


def _numbered(units: list[Unit]) -> list[Unit]:
    """The units sorted by start (stable: ties keep script order), each indexed by its place."""
    units.sort(key=lambda u: u.start)
    for n, unit in enumerate(units):
        unit.index = n
    return units
