"""What each model stage stores for its segment (`stage_runs.result`), as the contract between the stage that
writes it and the stages, exports and resumes that read it: stored with `model_dump(mode="json")`, read with
`model_validate`. The field names are the stored keys, so rows written before these models read the same."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from annotator.schemas.context import CharacterProfile
from annotator.schemas.plot import NextSegmentPlot
from annotator.schemas.script import Script
from annotator.schemas.thinking import DistilledThinking


class PlotResult(BaseModel):
    answer: dict[str, Any] = Field(description="the validated plot answer (a first or a next segment's)")
    code_map: dict[str, str] = Field(default_factory=dict, description="answer code → canonical code")
    warnings: list[str] = Field(default_factory=list, description="what the CPM noted applying it")
    video_cache: dict[str, Any] | None = Field(default=None, description="the context cache made for it")
    # the profiles of the characters it placed as the memory stood right after it (the script is asked with
    # these, whatever later plots did); None in rows stored before the snapshot was kept
    script_profiles: list[CharacterProfile] | None = None

    def plot(self) -> NextSegmentPlot:
        return NextSegmentPlot.model_validate(self.answer)


class ScriptResult(BaseModel):
    script: Script


class DistillResult(BaseModel):
    thinking: DistilledThinking
    reasoning_content: str | None = None
