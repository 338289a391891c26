"""Text normalisation and the normalised Levenshtein similarity used throughout the metrics."""

from __future__ import annotations

import re
from functools import lru_cache

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)
def normalise(text: str | None) -> str:
    """Case-folded, punctuation replaced by spaces, whitespace collapsed: "Hello,  World!" → "hello world"."""
    if not text:
        return ""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def levenshtein_sim(a: str, b: str) -> float:
    """Normalised Levenshtein similarity of two *already normalised* strings, in [0, 1].

    1 − distance / max(len(a), len(b)); two empty strings are identical (1.0), empty vs non-empty is 0.0.
    """
    return Levenshtein.normalized_similarity(a, b)


def text_sim(a: str | None, b: str | None) -> float:
    """Normalised Levenshtein similarity after `normalise` (the paper's S_dialogue, S_action, Sim_text)."""
    return Levenshtein.normalized_similarity(normalise(a), normalise(b))


def lexical_sim(a: str | None, b: str | None) -> float:
    """The offline judge's similarity: ½·token-set ratio + ½·normalised Levenshtein, in [0, 1].

    The token-set ratio forgives word order and a prediction that is a subset of the truth (or the reverse),
    the Levenshtein half rewards close wording. Either side empty → 0.0; equal after `normalise` → 1.0.
    """
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return 0.0
    if na == nb:
        return 1.0
    return 0.5 * fuzz.token_set_ratio(na, nb) / 100.0 + 0.5 * Levenshtein.normalized_similarity(na, nb)


def join_texts(parts: list[str] | tuple[str, ...]) -> str:
    """Concatenate non-empty texts with a space (a run of events, or one character's lines in a group)."""
    return " ".join(p for p in parts if p)
