"""Judges: the similarity of free-text fields (stage 3) and the character-name resolution (stage 2).

- `LexicalJudge` (default): offline and deterministic — ½·token-set ratio + ½·normalised Levenshtein for
  free text, synonym tables for the categorical scene fields (type, time), the `names` heuristics for
  character categories and proper-name pairs.
- `LLMJudge`: an OpenAI-compatible chat-completions model through the `openai` SDK, with per-field prompts
  written after the paper's criteria (Appendix A.2), many pairs per request, and an on-disk cache keyed by a
  hash of (model, prompt, inputs). Settings come from V2S_JUDGE_BASE_URL, V2S_JUDGE_API_KEY (or
  OPENAI_API_KEY), V2S_JUDGE_MODEL and V2S_JUDGE_CACHE_DIR; a client can be injected. The key is never logged.

Both share a fast path: texts equal after normalisation score 1.0, an empty side scores 0.0 (never sent).

Modules: `base` (the protocol, the judged fields, the error), `categories` (the shared fast path and the
categorical fields), `lexical`, `llm` (the LLM judge and the reading of its answers), `prompts`, `cache`.
"""

from __future__ import annotations

from typing import Any

from evaluation.judges.base import JUDGE_FIELDS, Judge, JudgeError
from evaluation.judges.cache import DiskCache
from evaluation.judges.categories import canonical_category
from evaluation.judges.lexical import LexicalJudge
from evaluation.judges.llm import LLMJudge, parse_json_object
from evaluation.judges.prompts import similarity_prompt

__all__ = [
    "JUDGE_FIELDS",
    "DiskCache",
    "Judge",
    "JudgeError",
    "LLMJudge",
    "LexicalJudge",
    "canonical_category",
    "get_judge",
    "parse_json_object",
    "similarity_prompt",
]


def get_judge(name: str | Judge | None = None, **kwargs: Any) -> Judge:
    """A judge by name ("lexical" or "llm"), or the given judge unchanged."""
    if name is None or name == "lexical":
        return LexicalJudge()
    if name == "llm":
        return LLMJudge(**kwargs)
    if isinstance(name, str):
        raise ValueError(f"unknown judge {name!r}: use 'lexical' or 'llm'")
    return name
