"""Plausible token counts, as Gemini and OpenAI-compatible servers report them.

Prompt: len(text)/4 per text, plus per second of video `fps` frames of 258 tokens (66 at low media
resolution) and 32 tokens of audio when the video has sound. Output: len(answer)/4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FRAME_TOKENS = 258
LOW_RES_FRAME_TOKENS = 66
AUDIO_TOKENS_PER_S = 32


def text_tokens(chars: int) -> int:
    return math.ceil(chars / 4) if chars > 0 else 0


@dataclass(frozen=True)
class Usage:
    text: int = 0
    video: int = 0
    audio: int = 0
    output: int = 0
    reasoning: int = 0

    @property
    def prompt(self) -> int:
        return self.text + self.video + self.audio

    @property
    def total(self) -> int:
        return self.prompt + self.output + self.reasoning


def estimate(
    *,
    prompt_chars: int,
    answer_chars: int,
    video_s: float = 0.0,
    has_audio: bool = False,
    fps: float | None = None,
    low_resolution: bool = False,
    reasoning_chars: int = 0,
) -> Usage:
    frames = math.ceil(max(0.0, video_s) * (fps or 1.0))
    per_frame = LOW_RES_FRAME_TOKENS if low_resolution else FRAME_TOKENS
    return Usage(
        text=text_tokens(prompt_chars),
        video=frames * per_frame,
        audio=math.ceil(video_s * AUDIO_TOKENS_PER_S) if has_audio and video_s > 0 else 0,
        output=text_tokens(answer_chars),
        reasoning=text_tokens(reasoning_chars),
    )
