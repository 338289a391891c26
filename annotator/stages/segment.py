"""The segment as the stages see it: an index, a duration and the proxy video to show the model."""

from __future__ import annotations

from pydantic import BaseModel

from annotator.gateway.base import Media
from annotator.schemas.timecode import format_timestamp


class SegmentInput(BaseModel):
    index: int  # 1-based position in the video (or series) the plot chain follows
    start_s: float
    end_s: float
    media: Media

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def duration_label(self) -> str:
        return format_timestamp(self.duration_s)
