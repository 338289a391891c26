"""Timestamps as models write them ("MM:SS", "HH:MM:SS", "MM:SS.s") and as records store them (seconds).

Models are asked for clip-relative "MM:SS" strings because they are far more reliable at that than at raw
floats; the same pydantic field type accepts numbers too, so one schema serves the model's answer and the
exported record (where the value is absolute seconds in the source video).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from evaluation.timecode import parse_seconds


def parse_timestamp(value: object) -> float:
    """Seconds from "MM:SS", "HH:MM:SS", "MM:SS.ms", "75", "75.5" or a number; ValueError names the bad value
    (one rule for the answers and the metrics: evaluation/timecode.py)."""
    return parse_seconds(value)


def format_timestamp(seconds: float) -> str:
    """ "MM:SS" (minutes may exceed 59) for prompts and the simulator's answers."""
    whole = round(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


Seconds = Annotated[
    float,
    BeforeValidator(parse_timestamp),
    PlainSerializer(lambda v: round(float(v), 3), return_type=float),
    WithJsonSchema(
        {"type": "string", "description": "MM:SS relative to the start of the clip you were shown"},
        mode="validation",
    ),
    WithJsonSchema({"type": "number", "description": "seconds"}, mode="serialization"),
]
"""A time: parsed from "MM:SS" or seconds, serialised as seconds."""
