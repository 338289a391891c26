"""What the response cache stores and under which key: shared by the gateway (which asks) and the database
store in profiles_db (which keeps), so both sides speak one schema without profiles_db importing the gateway."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


class CacheKey(BaseModel):
    backend: str
    model: str
    prompt_version: str
    prompt_sha256: str
    media_sha256: str | None = None
    stage: str = ""

    @property
    def digest(self) -> str:
        parts = [self.backend, self.model, self.prompt_version, self.prompt_sha256, self.media_sha256 or ""]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class CachedAnswer(BaseModel):
    answer: dict[str, Any]  # the validated value, as JSON
    reasoning_content: str | None = None
    calls: int = 0  # what the original answer cost (a hit itself costs nothing)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
