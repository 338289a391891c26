"""Label Studio's JSON, as far as the round trip uses it, and the labeling config v2s writes.

One task per segment: `data.video` is the segment's proxy, `data.fps` its frame rate (the `<Video>` tag's
`frameRate="$fps"`), the `v2s_*` keys say which record it is. Scenes and events are `<TimelineLabels>`
regions (label Scene or Event; frames, see jobs/review/frames.py) whose fields are per-region `<TextArea>`s and
whose character is a per-region `<Choices>` of the scope's canonical characters. A region keeps a stable id
(`sc2` is the record's second scene, `sc2e3` that scene's third event), so an import finds what it was.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from pydantic import BaseModel, ConfigDict, Field

VIDEO = "video"
KIND = "kind"  # the TimelineLabels control
SCENE, EVENT = "Scene", "Event"
CHARACTER = "character"  # the Choices control: "Name [code]" or ENVIRONMENT
CHARACTER_NAME = "character_name"  # editing it renames the character (through the CPM)
CAST = "cast"  # one per task: rename / merge / split lines
ENVIRONMENT = "Environment"
EVENT_FIELDS = ("dialogue", "action", "expression", "audio_cue", "subtext")
SCENE_FIELDS = ("location", "type", "environment", "time", "mood")
FIELD_TITLES = {
    "dialogue": "Dialogue",
    "action": "Action",
    "expression": "Expression",
    "audio_cue": "Audio cue",
    "subtext": "Subtext",
    "location": "Location",
    "type": "Type (Interior / Exterior)",
    "environment": "Environment",
    "time": "Time of day",
    "mood": "Mood",
}


class Range(BaseModel):
    start: int
    end: int


class ResultValue(BaseModel):
    model_config = ConfigDict(extra="allow")
    ranges: list[Range] | None = None
    timelinelabels: list[str] | None = None
    text: list[str] | str | None = None
    choices: list[str] | None = None


class Result(BaseModel):
    """One item of an annotation's or a prediction's `result`: a region (timelinelabels) or a control's value
    on a region (same `id`) or on the whole task (its own id)."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    from_name: str
    to_name: str = VIDEO
    type: str
    value: ResultValue
    origin: str | None = None


class Annotation(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int | None = None
    result: list[Result] = Field(default_factory=list)
    was_cancelled: bool = False
    completed_by: Any = None  # an id, or {"id", "email", …} in a project export
    created_at: str | None = None
    updated_at: str | None = None


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    model_version: str = ""
    result: list[Result] = Field(default_factory=list)


class Task(BaseModel):
    """A task as v2s writes it and as Label Studio exports it (then with `id` and `annotations`)."""

    model_config = ConfigDict(extra="allow")
    id: int | None = None
    data: dict[str, Any]
    predictions: list[Prediction | int] = Field(default_factory=list)  # an export lists their ids only
    annotations: list[Annotation] = Field(default_factory=list)


def choice_value(name: str, code: str) -> str:
    """The character list's entry for one canonical character: its name with its code, so an import can tell
    two characters of one name apart."""
    return f"{name} [{code}]"


def code_of_choice(value: str) -> str | None:
    """The code in a `choice_value` entry; None for Environment (or an entry no export wrote)."""
    if value.endswith("]") and " [" in value:
        return value.rsplit(" [", 1)[1][:-1] or None
    return None


def labeling_config(characters: list[str]) -> str:
    """The project's labeling config: the proxy with its timeline, the fields of the selected region, the
    character list (`characters`: choice values, Environment first) and the task's cast corrections."""
    choices = "".join(f"      <Choice value={quoteattr(c)}/>\n" for c in [ENVIRONMENT, *characters])
    return (
        "<View>\n"
        '  <Header value="$title"/>\n'
        f'  <Video name="{VIDEO}" value="$video" frameRate="$fps" timelineHeight="120"/>\n'
        f'  <TimelineLabels name="{KIND}" toName="{VIDEO}">\n'
        f'    <Label value="{SCENE}" background="#4C78A8"/>\n'
        f'    <Label value="{EVENT}" background="#F58518"/>\n'
        "  </TimelineLabels>\n"
        f'  <View visibleWhen="region-selected" whenTagName="{KIND}" whenLabelValue="{EVENT}">\n'
        '    <Header value="Event: character"/>\n'
        f'    <Choices name="{CHARACTER}" toName="{VIDEO}" perRegion="true" layout="select">\n'
        f"{choices}"
        "    </Choices>\n"
        f"{_area(CHARACTER_NAME, 'Character name (editing it renames the character everywhere)')}"
        + "".join(_area(f, FIELD_TITLES[f]) for f in EVENT_FIELDS)
        + "  </View>\n"
        f'  <View visibleWhen="region-selected" whenTagName="{KIND}" whenLabelValue="{SCENE}">\n'
        + "".join(_area(f, FIELD_TITLES[f]) for f in SCENE_FIELDS)
        + "  </View>\n"
        '  <Header value="Cast corrections, one a line: rename CODE: NAME · merge CODE into CODE · split CODE"/>\n'
        f'  <TextArea name="{CAST}" toName="{VIDEO}" editable="true" rows="3"/>\n'
        "</View>\n"
    )


def _area(name: str, title: str) -> str:
    return (
        f'    <Header value={quoteattr(title)} size="6"/>\n'
        f'    <TextArea name="{name}" toName="{VIDEO}" perRegion="true" editable="true" maxSubmissions="1"'
        ' rows="2"/>\n'
    )


def region(region_id: str, kind: str, frames: tuple[int, int]) -> Result:
    return Result(
        id=region_id,
        from_name=KIND,
        type="timelinelabels",
        value=ResultValue(ranges=[Range(start=frames[0], end=frames[1])], timelinelabels=[kind]),
        origin="prediction",
    )


def text_on(region_id: str, name: str, text: str, frames: tuple[int, int]) -> Result:
    # Label Studio repeats a region's ranges in each of its per-region results; so does the export
    ranges = [Range(start=frames[0], end=frames[1])]
    return Result(
        id=region_id, from_name=name, type="textarea", value=ResultValue(ranges=ranges, text=[text])
    )


def choice_on(region_id: str, value: str, frames: tuple[int, int]) -> Result:
    ranges = [Range(start=frames[0], end=frames[1])]
    return Result(
        id=region_id, from_name=CHARACTER, type="choices", value=ResultValue(ranges=ranges, choices=[value])
    )


def texts(value: ResultValue) -> str:
    """A TextArea's value as one string (Label Studio keeps a list of submitted lines)."""
    if value.text is None:
        return ""
    lines = [value.text] if isinstance(value.text, str) else value.text
    return "\n".join(line for line in lines if line is not None).strip()
