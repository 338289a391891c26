"""Answers of the character-centric plot reasoning stage (paper Fig. 9 for the first segment, Fig. 10 after).

Field names follow the paper so that prompts, answers and the CPM speak one vocabulary. Lenient where models
are sloppy (missing optional lists, "Unnamed" names), strict where the CPM depends on it (ids).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from annotator.schemas.timecode import Seconds

CODE_PATTERN = re.compile(r"^(char|unknown)_(\d{1,6})$")
CODE_IN_TEXT = re.compile(r"\b(?:char|unknown)_\d{1,6}\b", re.IGNORECASE)  # models write CHAR_001 too
UNNAMED = "Unnamed"


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


# models write "High", " medium" as well: one rule for every confidence of an answer
Confidence = Annotated[Literal["high", "medium", "low"], BeforeValidator(_lower)]


def replace_codes(text: str, rename: Callable[[str], str]) -> str:
    """Rewrite every character code in free text (narratives, evidence, thinking) with `rename(code)`; the one
    rule for the annotator (prompts, records) and the CPM (summaries, stored notes)."""
    return CODE_IN_TEXT.sub(lambda m: rename(m.group(0)), text)


def code_key(code: str) -> str:
    """One spelling per code, as the CPM compares them ("CHAR_1" and "char_001" are one code); anything else
    stripped as it is."""
    match = CODE_PATTERN.match(code.strip().lower())
    return f"{match.group(1)}_{int(match.group(2)):03d}" if match else code.strip()


def is_unnamed(name: str | None) -> bool:
    return name is None or name.strip().lower() in {"", "unnamed", "unknown", "none", "n/a"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SegmentInfo(_Answer):
    segment_index: int
    duration: str = ""
    main_location: str = ""
    time_period: str = ""
    continuity_note: str | None = None


class SegmentAppearance(_Answer):
    timestamp: Seconds
    action: str = ""


class NewInfo(_Answer):
    appearance: str | None = None
    voice: str | None = None
    personality: str | None = None
    aliases: list[str] = Field(default_factory=list)


class PlotCharacter(_Answer):
    """A character as the model reports it for one segment (first-segment fields plus matching fields)."""

    id: str = Field(description="char_NNN if the character's name is known, unknown_NNN otherwise")
    name: str = Field(default=UNNAMED, description="name heard or seen in the video, or 'Unnamed'")
    aliases: list[str] = Field(default_factory=list)
    appearance: str = ""
    voice: str = ""
    personality: str = ""
    first_appear: Seconds | None = None
    role_type: str = ""
    appearances_in_segment: list[SegmentAppearance] = Field(default_factory=list)
    matched_from: str | None = Field(default=None, description="id of the known character this one is")
    match_confidence: Confidence | None = None
    match_reason: str | None = None
    name_evidence: str | None = Field(
        default=None, description="the line or on-screen text that gives this name, quoted with its time"
    )
    new_info: NewInfo | None = None

    @field_validator("id")
    @classmethod
    def _strip_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("character id is empty")
        return value


class NameUpdate(_Answer):
    unknown_id: str
    name: str
    evidence: str = ""


class SameAs(_Answer):
    """The model's proposal that two ids of the answer or the memory are one person (e.g. under a new look)."""

    id: str = Field(description="the id that should go (usually the newer one)")
    same_as: str = Field(description="the known id it is the same person as")
    confidence: Confidence = "medium"
    evidence: str = ""


class MainEvent(_Answer):
    timestamp: Seconds
    description: str
    involved_characters: list[str] = Field(default_factory=list)


class PlotSummary(_Answer):
    main_events: list[MainEvent] = Field(default_factory=list)
    narrative: str = ""
    connection_to_previous: str | None = None


class PlotRelationship(_Answer):
    char1_id: str
    char2_id: str
    relationship: str
    evidence: str = ""
    is_new: bool | None = None


class SceneTransition(_Answer):
    timestamp: Seconds
    from_scene: str = ""
    to_scene: str = ""
    transition_type: str = ""


class AudioElements(_Answer):
    background_music: str = ""
    sound_effects: list[str] = Field(default_factory=list)
    ambient_sound: str = ""


class NewCharacterSummary(_Answer):
    id: str
    name: str = UNNAMED
    appearance: str = ""
    voice: str = ""
    role_in_segment: str = ""


class PlotReasoning(_Answer):
    """The plot-reasoning answer for any segment; the first segment simply leaves the matching fields empty."""

    segment_info: SegmentInfo
    characters: list[PlotCharacter] = Field(default_factory=list)
    name_updates: list[NameUpdate] = Field(default_factory=list)
    same_as: list[SameAs] = Field(default_factory=list)
    plot_summary: PlotSummary = Field(default_factory=PlotSummary)
    relationships: list[PlotRelationship] = Field(default_factory=list)
    scene_transitions: list[SceneTransition] = Field(default_factory=list)
    audio_elements: AudioElements | None = None
    new_characters_summary: list[NewCharacterSummary] = Field(default_factory=list)

    def missing(self) -> str | None:
        """What a usable plot lacks: every field has a default, so an all-empty template (a degenerate answer,
        or one whose keys are all misspelt) validates, and must not reach the character memory."""
        summary = self.plot_summary
        if not self.characters and not summary.main_events and not summary.narrative.strip():
            return "the answer has no characters, no main events and no narrative: an empty plot"
        return None

    def declared_codes(self) -> set[str]:
        """The ids this answer introduces (its character entries): new ones are new characters, DESIGN §5."""
        return {code_key(c.id) for c in self.characters}

    def clip_times(self) -> list[tuple[str, float]]:
        """Every clip-relative time of the answer, labelled for a repair turn (see schemas/contract.py)."""
        times = [(f"main event {i + 1}", e.timestamp) for i, e in enumerate(self.plot_summary.main_events)]
        for c in self.characters:
            if c.first_appear is not None:
                times.append((f"first_appear of {c.id}", c.first_appear))
            times += [(f"an appearance of {c.id}", a.timestamp) for a in c.appearances_in_segment]
        times += [(f"scene transition {i + 1}", t.timestamp) for i, t in enumerate(self.scene_transitions)]
        return times


class FirstSegmentPlot(PlotReasoning):
    """Fig. 9: the cold-start answer (no known characters to match against)."""


class NextSegmentPlot(PlotReasoning):
    """Fig. 10: the answer for segment k > 1, matched against the CPM's character context."""
