"""Timestamps as models write them ("MM:SS", "HH:MM:SS", "MM:SS.s") and as records store them (seconds).

Models are asked for clip-relative "MM:SS" strings because they are far more reliable at that than at raw
floats; the same pydantic field type accepts numbers too, so one schema serves the model's answer and the
exported record (where the value is absolute seconds in the source video).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d{1,3}):(\d{1,2}(?:[.,]\d+)?)\s*$")


def parse_timestamp(value: object) -> float:
    """Seconds from "MM:SS", "HH:MM:SS", "MM:SS.ms", "75", "75.5" or a number; ValueError names the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _CLOCK.match(text)
        if match:
            hours, minutes, secs = match.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs.replace(",", "."))
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(f"timestamp {value!r} is not MM:SS, HH:MM:SS or seconds") from None
    else:
        raise ValueError(f"timestamp {value!r} is not a time")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp {value!r} is negative or not finite")
    return seconds


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
