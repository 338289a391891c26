"""The assistant turn's reasoning is written the way Qwen3's chat template and LLaMA-Factory's reasoning
templates write it, `<think>\\n…\\n</think>\\n\\n`: a trainer told not to think removes exactly that prefix and
is left with the script JSON alone (with `</think>\\n` it stripped nothing and trained on the reasoning)."""

from __future__ import annotations

import json

from annotator.schemas import SCHEMA_VERSION
from tests.export.shapes import _build, series_episode

# LLaMA-Factory's qwen3 template: thought_words=("<think>\n", "\n</think>\n\n"); with enable_thinking false its
# ReasoningTemplate drops the assistant content's prefix up to and including the second word.
THOUGHT_WORDS = ("<think>\n", "\n</think>\n\n")


def _without_thought(content: str) -> str:
    start, end = THOUGHT_WORDS
    if content.startswith(start) and end in content:
        return content[content.index(end) + len(end) :]
    return content


def test_a_template_without_thinking_strips_the_reasoning_whole():
    record = _build("vid-a", series_episode(), None)
    answer = next(m.content for m in record.messages if m.role == "assistant")
    assert answer.startswith(THOUGHT_WORDS[0] + record.thinking + THOUGHT_WORDS[1])
    script = json.loads(_without_thought(answer))
    assert script["script"] and "<think>" not in _without_thought(answer)
    assert tuple(map(int, SCHEMA_VERSION.split("."))) >= (2, 2, 0)


def test_a_media_placeholder_spoken_in_a_scene_never_reaches_a_trainer_as_one():
    """LLaMA-Factory, ms-swift and Qwen-VL count `<video>`/`<image>`/`<audio>` in every turn against the row's
    media: one in a line of dialogue would fail the whole dataset (#33). Only the user turn's `<video>` stays."""
    from jobs.export import ExportFormat, convert, retagged

    shape = series_episode()
    shape["script"].script[0].events[
        0
    ].dialogue = "Play the <video> again, then send the <image> and <audio>."
    record = _build("vid-a", shape, None)
    answer = next(m.content for m in record.messages if m.role == "assistant")
    assert "<video>" not in answer and "<image>" not in answer and "<audio>" not in answer
    assert "Play the ‹video› again, then send the ‹image› and ‹audio›." in answer
    assert record.script.script[0].events[0].dialogue.startswith("Play the <video>")  # the data keeps it
    row = convert(record, ExportFormat.LLAMAFACTORY, "/proxies/seg.mp4")
    assert sum(turn.value.count("<video>") for turn in row.conversations) == len(row.videos) == 1
    tagged_again = dict(retagged(record, "reasoning"))["assistant"]
    assert tagged_again.startswith("<reasoning>\n") and "<video>" not in tagged_again
