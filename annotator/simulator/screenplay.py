"""The screenplay: the ground truth of a sample film, from which the film is rendered and the simulator answers.

Format (JSON, documented in docs/screenplay.md): a title, a duration, a cast list and a `script` in the script
schema with absolute timestamps; `character` in events is a cast member's name (or "Environment"), as a human
annotator would write the ground truth.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from annotator.schemas.script import ENVIRONMENT, Script
from annotator.schemas.timecode import Seconds

DEFAULT_SCREENPLAY = Path(__file__).parent / "data" / "sample_screenplay.json"
IDENTITY_SCREENPLAY = Path(__file__).parent / "data" / "identity_screenplay.json"
OFF_SCREEN = {"VO", "OS", "V.O.", "O.S."}  # voice types of lines heard but not seen
"""A story built to play the identity patterns real models produce (docs/screenplay.md, *Night Shift at Pier
Nine*): a descriptor named later, name forms one at a time, two mothers called "Mom", a group and one of its
members, a costume change with no name spoken, and mirrors that must stay apart."""


def norm_name(text: str | None) -> str:
    """The comparison form of a name for the simulator: lower case, spaces collapsed, dots dropped."""
    return " ".join(re.sub(r"[.]", " ", (text or "").lower()).split())


class Costume(BaseModel):
    from_s: Seconds = Field(description="absolute time from which the character wears this")
    appearance: str
    look: str = Field(default="", description="short on-screen label for this look (the film draws it)")
    color: str | None = Field(
        default=None, description="colour the film draws this look in; default the cast colour"
    )


class NameForm(BaseModel):
    name: str = Field(description="a form of the name, as said (e.g. 'Dr. Osei', 'Kate')")
    said_at: Seconds = Field(description="absolute time the form is first said on screen")


class CastMember(BaseModel):
    name: str
    kind: Literal["individual", "group"] = Field(
        default="individual", description="'group' for a collective ('the dock guards'), named by its label"
    )
    aliases: list[str] = Field(default_factory=list)
    descriptor: str = Field(
        default="",
        description="what the character is called before the name is said ('Driver'); the model reports it "
        "as the name until `named_at` (or the first name form)",
    )
    name_forms: list[NameForm] = Field(
        default_factory=list,
        description="forms of the name said one at a time before the full `name` is said at `named_at`",
    )
    appearance: str
    costumes: list[Costume] = Field(default_factory=list, description="later looks, in time order")
    voice: str = ""
    personality: str = ""
    role_type: str = "Supporting"
    named_at: Seconds | None = Field(
        default=None, description="first time the name is said on screen; before it the character is unnamed"
    )
    color: str = Field(default="white", description="colour the film draws this character in")
    look: str = Field(default="", description="short visual descriptor the film labels the figure with")
    voice_hz: float | None = Field(default=None, description="pitch of the film's stand-in voice")

    def appearance_at(self, t: float) -> str:
        current = self.appearance
        for costume in self.costumes:
            if costume.from_s <= t:
                current = costume.appearance
        return current

    def costume_at(self, t: float) -> Costume | None:
        """The costume worn at `t`, or None while the character still wears the base `appearance`."""
        worn = [costume for costume in self.costumes if costume.from_s <= t]
        return worn[-1] if worn else None

    def look_at(self, t: float) -> str:
        costume = self.costume_at(t)
        return (costume.look if costume and costume.look else self.look) or self.appearance.split(",")[0]

    def color_at(self, t: float) -> str:
        costume = self.costume_at(t)
        return costume.color if costume and costume.color else self.color

    @model_validator(mode="after")
    def _naming_is_consistent(self) -> CastMember:
        if self.kind == "group" and (self.named_at is not None or self.name_forms or self.descriptor):
            raise ValueError(
                f"{self.name}: a group is known by its label from the start "
                "(no named_at, name_forms or descriptor)"
            )
        if self.name_forms:
            if self.named_at is None:
                raise ValueError(f"{self.name}: name_forms need named_at, the time the full name is said")
            times = [form.said_at for form in self.name_forms]
            if times != sorted(times) or times[-1] >= self.named_at:
                raise ValueError(f"{self.name}: name_forms must be in time order and said before named_at")
            if any(norm_name(form.name) == norm_name(self.name) for form in self.name_forms):
                raise ValueError(f"{self.name}: the full name belongs in named_at, not in name_forms")
        if self.descriptor and self.named_at is None:
            raise ValueError(f"{self.name}: a descriptor is used until the name is said; set named_at")
        return self

    def spoken_names(self) -> list[tuple[str, float | None]]:
        """Every form of the name with the time it is first said, in order, the full name last (None: known
        from the start)."""
        return [(form.name, form.said_at) for form in self.name_forms] + [(self.name, self.named_at)]

    def first_named_at(self) -> float | None:
        """When the first form of the name is said (None: known from the start)."""
        return self.name_forms[0].said_at if self.name_forms else self.named_at

    def named_by(self, t: float) -> bool:
        first = self.first_named_at()
        return first is None or first <= t

    def all_names(self) -> list[str]:
        """The name, its aliases and its forms (not the descriptor): what others may call the character."""
        return list(dict.fromkeys([self.name, *self.aliases, *(form.name for form in self.name_forms)]))


class Screenplay(BaseModel):
    title: str
    duration_s: float
    cast: list[CastMember]
    script: Script

    @model_validator(mode="after")
    def _characters_are_cast(self) -> Screenplay:
        names = {c.name for c in self.cast} | {ENVIRONMENT}
        unknown = {e.character for e in self.script.events()} - names
        if unknown:
            raise ValueError(f"script events name characters not in the cast: {sorted(unknown)}")
        return self

    def member(self, name: str) -> CastMember | None:
        return next((c for c in self.cast if c.name == name), None)

    def shared_names(self) -> set[str]:
        """Names (normalised) that more than one cast member goes by, like "Mom" for two mothers or "Tom" for
        two Toms: who they mean depends on who speaks, so the simulated model never identifies anyone by them."""
        counts: dict[str, int] = {}
        for member in self.cast:
            for name in {norm_name(n) for n in member.all_names() if n.strip()}:
                counts[name] = counts.get(name, 0) + 1
        return {name for name, count in counts.items() if count > 1}

    def scene_spans(self) -> list[tuple[float, float]]:
        """(start, end) of every scene: contiguous from 0 to `duration_s`, each scene lasting until the next
        begins (the film cuts there). A scene without `start_timestamp` starts at its first event."""
        starts: list[float] = []
        for scene in self.script.script:
            start = scene.start_timestamp
            if start is None:
                start = scene.events[0].timestamp if scene.events else (starts[-1] if starts else 0.0)
            if starts and start <= starts[-1]:
                raise ValueError(
                    f"scene {scene.scene_id} starts at {start:.1f}s, not after the scene before it"
                )
            starts.append(start)
        if starts:
            starts[0] = 0.0
        if starts and starts[-1] >= self.duration_s:
            raise ValueError(
                f"the last scene starts at {starts[-1]:.1f}s, after duration_s={self.duration_s}"
            )
        return list(zip(starts, [*starts[1:], self.duration_s], strict=True))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Screenplay:
        target = Path(path) if path else DEFAULT_SCREENPLAY
        try:
            return cls.model_validate_json(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"screenplay {target} does not exist") from None
        except ValueError as exc:
            raise ValueError(f"screenplay {target} is not valid: {exc}") from None
