"""What an apply reports and the errors it raises."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChainOrderError(ValueError):
    """An apply out of the scope's memory order: an earlier segment is neither applied nor given up, or a
    later one was applied already. Applying it would reason over a memory with a hole in it."""


class ApplyReport(BaseModel):
    code_map: dict[str, str] = Field(default_factory=dict)  # every id used in the answer → canonical code
    created: list[str] = Field(default_factory=list)
    matched: list[str] = Field(default_factory=list)
    named: list[str] = Field(default_factory=list)
    merged: list[tuple[str, str, str]] = Field(default_factory=list)  # (from_code, into_code, reason)
    proposals: list[tuple[str, str, str]] = Field(default_factory=list)  # (from_code, into_code, status)
    warnings: list[str] = Field(default_factory=list)
