"""Reading the engine's prompts back: which stage a request is for, and the data blocks it carries.

A request names its stage through the title of its response schema (`FirstSegmentPlot`, `NextSegmentPlot`,
`Script`, `DistilledThinking`); without a schema the prompt's `## …` headings decide (see prompts/README.md).
"""

from __future__ import annotations

import json
import re
from enum import StrEnum


class Stage(StrEnum):
    PLOT_FIRST = "plot_first"
    PLOT_NEXT = "plot_next"
    SCRIPT = "script"
    DISTILL = "distill"
    GENERIC = "generic"

    @property
    def needs_video(self) -> bool:
        return self in (Stage.PLOT_FIRST, Stage.PLOT_NEXT, Stage.SCRIPT)


_BY_TITLE = {
    "firstsegmentplot": Stage.PLOT_FIRST,
    "nextsegmentplot": Stage.PLOT_NEXT,
    "script": Stage.SCRIPT,
    "distilledthinking": Stage.DISTILL,
}
_CLIP_INDEX = re.compile(r"\bThis is clip (\d+)\b")


def heading_body(texts: list[str], heading: str) -> str | None:
    """The text under `## heading` (up to the next `## ` heading) in the first text that has it."""
    pattern = re.compile(rf"^##[ \t]+{re.escape(heading)}[ \t]*\r?\n(.*?)(?=^##[ \t]|\Z)", re.M | re.S)
    for text in texts:
        match = pattern.search(text)
        if match:
            return match.group(1).strip()
    return None


def json_block(texts: list[str], heading: str) -> object | None:
    """The fenced ```json block right under `## heading`, parsed; None when absent or not JSON.

    JSON strings cannot hold a raw newline, so the first line that is just ``` closes the block."""
    pattern = re.compile(
        rf"^##[ \t]+{re.escape(heading)}[ \t]*\r?\n\s*```(?:json)?[ \t]*\r?\n(.*?)\r?\n[ \t]*```", re.M | re.S
    )
    for text in texts:
        match = pattern.search(text)
        if match:
            try:
                return json.loads(match.group(1))
            except ValueError:
                return None
    return None


def has_heading(texts: list[str], heading: str) -> bool:
    pattern = re.compile(rf"^##[ \t]+{re.escape(heading)}[ \t]*$", re.M)
    return any(pattern.search(text) for text in texts)


def detect_stage(schema_title: str | None, texts: list[str], *, has_video: bool) -> Stage:
    """Schema title first; then headings; then a video alone means a first-segment plot prompt."""
    if schema_title:
        stage = _BY_TITLE.get(schema_title.replace("_", "").replace("-", "").replace(" ", "").lower())
        if stage is not None:
            return stage
    if has_heading(texts, "Known characters"):
        return Stage.PLOT_NEXT
    if has_heading(texts, "Plot synopsis") or has_heading(texts, "Character profiles"):
        return Stage.SCRIPT
    if has_heading(texts, "Plot") and has_heading(texts, "Script"):
        return Stage.DISTILL
    return Stage.PLOT_FIRST if has_video else Stage.GENERIC


def clip_index(texts: list[str]) -> int | None:
    """The `$segment_index` the plot prompts state ("This is clip 3 …")."""
    for text in texts:
        match = _CLIP_INDEX.search(text)
        if match:
            return int(match.group(1))
    return None


def profiles(texts: list[str], heading: str) -> list[dict]:
    """The list of CharacterProfile dumps under `## Known characters` / `## Character profiles`.

    Accepts a bare list or an object with a `characters` list (a CharacterContext dump)."""
    value = json_block(texts, heading)
    if isinstance(value, dict):
        value = value.get("characters")
    if not isinstance(value, list):
        return []
    return [p for p in value if isinstance(p, dict) and isinstance(p.get("id"), str)]
