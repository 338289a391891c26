"""What the Character Profile Manager hands to the prompts: canonical profiles and the previous summary.

Defined here (not in profiles_db) because the annotator renders it and must not import the database layer.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class CharacterProfile(BaseModel):
    id: str = Field(description="canonical code, char_NNN or unknown_NNN")
    name: str | None = None
    status: str = "provisional"
    aliases: list[str] = Field(default_factory=list)
    appearance: str = ""
    appearance_history: list[str] = Field(default_factory=list)
    voice: str = ""
    personality: str = ""
    role_type: str = ""
    first_seen_segment: int | None = None
    last_seen_segment: int | None = None
    appearances: int = 0
    former_codes: list[str] = Field(
        default_factory=list, description="codes this character was known by before"
    )

    @property
    def display_name(self) -> str:
        return self.name or self.id


PROMPT_FIELDS = frozenset(
    {
        "id",
        "name",
        "aliases",
        "appearance",
        "appearance_history",
        "voice",
        "personality",
        "role_type",
        "last_seen_segment",
    }
)
"""The profile fields rendered into prompts (the plot context and the script's character list)."""


class CharacterContext(BaseModel):
    scope: str
    segment_index: int
    characters: list[CharacterProfile] = Field(default_factory=list)
    previous_summary: str | None = None
    omitted_characters: int = 0
