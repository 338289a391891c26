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
from annotator.schemas.record import SCHEMA_VERSION, Record
from annotator.schemas.script import Scene, Script, ScriptEvent
from annotator.schemas.thinking import DistilledThinking
from annotator.schemas.timecode import Seconds, format_timestamp, parse_timestamp
from annotator.schemas.video_script import VideoScript

# Name → (model, JSON-schema mode). Answer schemas are shown to models ("validation": times as MM:SS strings);
# the record is what users read from shards ("serialization": times as seconds).
SCHEMAS: dict[str, tuple[type, str]] = {
    "plot-first": (FirstSegmentPlot, "validation"),
    "plot-next": (NextSegmentPlot, "validation"),
    "script": (Script, "validation"),
    "thinking": (DistilledThinking, "validation"),
    "record": (Record, "serialization"),
    "record-script": (Script, "serialization"),  # `record.script`: the script with absolute seconds
    "character-context": (CharacterContext, "serialization"),
    "video-script": (VideoScript, "serialization"),  # a whole video's merged script (`export --whole-videos`)
}


def schema_id(name: str) -> str:
    """A URN, not a URL: the schemas are published by `v2s schema`, not served from a host that could vanish."""
    return f"urn:v2s:schema:{name}:{SCHEMA_VERSION}"


def json_schema(name: str) -> dict:
    if name not in SCHEMAS:
        raise KeyError(f"unknown schema {name!r}; choose one of {', '.join(SCHEMAS)}")
    model, mode = SCHEMAS[name]
    # `$id` only: the schemas are also handed to model APIs, which accept a subset of the keywords
    return {"$id": schema_id(name), **model.model_json_schema(mode=mode)}


__all__ = [
    "SCHEMAS",
    "SCHEMA_VERSION",
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
    "schema_id",
]
