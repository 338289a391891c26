"""The one timestamp parser of the project: "MM:SS", "HH:MM:SS", "MM:SS.s" or seconds.

It lives here because `evaluation` imports nothing of the pipeline while the annotator may import `evaluation`
(DESIGN §3), so the metrics and the answer schemas (annotator/schemas/timecode.py) read times by one rule.
"""

from __future__ import annotations

import math
import re

_CLOCK = re.compile(r"^\s*(?:(\d+):)?(\d{1,3}):(\d{1,2}(?:[.,]\d+)?)\s*$")


def parse_seconds(value: object) -> float:
    """Seconds from "MM:SS", "HH:MM:SS", "MM:SS.s", "75", "75.5" or a number; ValueError names the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is not a time")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _CLOCK.match(value)
        if match:
            hours, minutes, secs = match.groups()
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs.replace(",", "."))
        else:
            try:
                seconds = float(value.strip())
            except ValueError:
                raise ValueError(f"timestamp {value!r} is not MM:SS, HH:MM:SS or seconds") from None
    else:
        raise ValueError(f"timestamp {value!r} is not a time")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp {value!r} is negative or not finite")
    return seconds
