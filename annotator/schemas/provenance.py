"""What v2s writes into every segment proxy it shows a model (MP4 `comment` tag, JSON).

It makes a proxy self-describing: anyone holding the file knows which source and time range it was cut from.
The simulator relies on it to answer for the right part of its screenplay (it sees only what a real model sees).
"""

from __future__ import annotations

import json

from pydantic import BaseModel

TAG = "comment"
MARKER = "v2s-provenance"


class Provenance(BaseModel):
    kind: str = MARKER
    video_id: str
    source_uri: str
    segment_index: int
    start_s: float
    end_s: float

    def to_tag(self) -> str:
        return json.dumps(self.model_dump(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_tag(cls, text: str | None) -> Provenance | None:
        if not text or MARKER not in text:
            return None
        try:
            return cls.model_validate_json(text)
        except ValueError:
            return None
