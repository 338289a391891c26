"""The screenplay: the ground truth of a sample film, from which the film is rendered and the simulator answers.

Format (JSON, documented in docs/screenplay.md): a title, a duration, a cast list and a `script` in the script
schema with absolute timestamps; `character` in events is a cast member's name (or "Environment"), as a human
annotator would write the ground truth.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from annotator.schemas.script import ENVIRONMENT, Script
from annotator.schemas.timecode import Seconds

DEFAULT_SCREENPLAY = Path(__file__).parent / "data" / "sample_screenplay.json"


class Costume(BaseModel):
    from_s: Seconds = Field(description="absolute time from which the character wears this")
    appearance: str
    look: str = Field(default="", description="short on-screen label for this look (the film draws it)")
    color: str | None = Field(
        default=None, description="colour the film draws this look in; default the cast colour"
    )


class CastMember(BaseModel):
    name: str
    aliases: list[str] = Field(default_factory=list)
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

    def named_by(self, t: float) -> bool:
        return self.named_at is None or self.named_at <= t


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
