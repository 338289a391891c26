"""What one stage of one segment cost: the model, the prompt version, tokens and dollars.

One model for the stage store (profiles_db writes it into `stage_runs`), the workers (which fill it from a model
call) and the record's `meta` (which sums it), so the three never convert one copy into another by hand.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class StageUsage(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read straight from a `stage_runs` row

    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tier: str | None = None  # the service tier the stage was served at (standard, flex)
    cached_tokens: int = 0  # of input_tokens, those read from a context cache
    thinking_tokens: int = 0  # of output_tokens, the model's thinking (what `v2s plan` measures it from)

    @field_validator("thinking_tokens", mode="before")
    @classmethod
    def _unrecorded(cls, value: object) -> object:
        # a stage_runs row that has not recorded it (before migration 0012, or no call yet) holds NULL
        return 0 if value is None else value
