"""The distilled "thinking" trace (paper §3.2, Thinking Data Construction): plot summary and character
relationships written as the reasoning a model would do before writing the script."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ThinkingCharacter(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    role: str = ""
    description: str = ""


class ThinkingRelationship(BaseModel):
    model_config = ConfigDict(extra="ignore")
    a: str
    b: str
    relationship: str


class DistilledThinking(BaseModel):
    model_config = ConfigDict(extra="ignore")
    plot_summary: str = Field(description="what happens in the clip, in order, in a few sentences")
    characters: list[ThinkingCharacter] = Field(default_factory=list)
    relationships: list[ThinkingRelationship] = Field(default_factory=list)
    thinking: str = Field(description="first-person reasoning from plot and relationships towards the script")

    def as_text(self) -> str:
        """The trace placed inside <think>…</think> of the SFT message."""
        lines = [self.thinking.strip(), "", "Plot: " + self.plot_summary.strip()]
        if self.relationships:
            lines.append(
                "Relationships: " + "; ".join(f"{r.a} – {r.b}: {r.relationship}" for r in self.relationships)
            )
        return "\n".join(line for line in lines if line is not None).strip()
