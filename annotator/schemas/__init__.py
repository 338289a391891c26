"""pydantic schemas: the contract between prompts, models, the CPM and the output records."""

from annotator.schemas.context import CharacterContext, CharacterProfile
from annotator.schemas.plot import (
    FirstSegmentPlot,
    NameUpdate,
    NextSegmentPlot,
    PlotCharacter,
    PlotReasoning,
    PlotRelationship,
    SameAs,
    is_unnamed,
)
from annotator.schemas.record import Record
from annotator.schemas.script import Scene, Script, ScriptEvent
from annotator.schemas.thinking import DistilledThinking
from annotator.schemas.timecode import Seconds, format_timestamp, parse_timestamp

# Name → (model, JSON-schema mode). Answer schemas are shown to models ("validation": times as MM:SS strings);
# the record is what users read from shards ("serialization": times as seconds).
SCHEMAS: dict[str, tuple[type, str]] = {
    "plot-first": (FirstSegmentPlot, "validation"),
    "plot-next": (NextSegmentPlot, "validation"),
    "script": (Script, "validation"),
    "thinking": (DistilledThinking, "validation"),
    "record": (Record, "serialization"),
    "character-context": (CharacterContext, "serialization"),
}


def json_schema(name: str) -> dict:
    if name not in SCHEMAS:
        raise KeyError(f"unknown schema {name!r}; choose one of {', '.join(SCHEMAS)}")
    model, mode = SCHEMAS[name]
    return model.model_json_schema(mode=mode)


__all__ = [
    "SCHEMAS",
    "CharacterContext",
    "CharacterProfile",
    "DistilledThinking",
    "FirstSegmentPlot",
    "NameUpdate",
    "NextSegmentPlot",
    "PlotCharacter",
    "PlotReasoning",
    "PlotRelationship",
    "Record",
    "SameAs",
    "Scene",
    "Script",
    "ScriptEvent",
    "Seconds",
    "format_timestamp",
    "is_unnamed",
    "json_schema",
    "parse_timestamp",
]
