"""Text hygiene for the CPM: name normalisation, code parsing and sanitising of model output before storage.

Kept apart from the CPM package because the rules are the contract for "same person" (docs/sql.md documents the
`character_aliases.normalized` column) and the tests exercise them directly.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from annotator.schemas import is_unnamed
from annotator.schemas.plot import CODE_PATTERN

MAX_NAME = 200  # longer than any real name or alias; a 10,000-character "name" is model garbage
MAX_TEXT = 4000  # appearance/voice/personality/evidence notes
MAX_LABEL = 200  # relationship labels (column is String(512))

_CODE = re.compile(CODE_PATTERN.pattern, re.IGNORECASE)  # the schema's rule, any case as models write it
_APOSTROPHES = str.maketrans("", "", "'’‘`´")
_SPACES = re.compile(r"\s+")
_PLACEHOLDERS = {"unnamed", "unknown", "anonymous", "unidentified"}


def clean(text: str | None) -> str:
    """Storable text: no NUL (PostgreSQL rejects it), no lone surrogates (not encodable), trimmed."""
    if not text:
        return ""
    text = text.replace("\x00", "")
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text.strip()


def sanitize(value: Any) -> Any:
    """`clean` applied to every string inside JSON-like data (main events, code maps)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return value


def normalize_name(name: str) -> str:
    """The comparison form of a name: casefold, accents removed (NFKD), punctuation stripped, spaces collapsed.

    Apostrophes vanish ("O'Brien" → "obrien") while other punctuation separates words ("Mary-Jane" →
    "mary jane", "Dr. Crane" → "dr crane"), so spelling variants a model produces compare equal.
    """
    text = unicodedata.normalize("NFKD", clean(name)).casefold().translate(_APOSTROPHES)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Mn":  # combining accents left by NFKD
            continue
        out.append(" " if cat[0] in "PSZC" else ch)
    return _SPACES.sub(" ", "".join(out)).strip()


def parse_code(raw: str | None) -> str | None:
    """The canonical spelling of a character code ("CHAR_1" → "char_001"), or None if it is not one."""
    if raw is None:
        return None
    match = _CODE.match(clean(raw))
    if not match:
        return None
    return format_code(match.group(1).lower(), int(match.group(2)))


def format_code(prefix: str, number: int) -> str:
    return f"{prefix}_{number:03d}"


def code_number(code: str) -> tuple[str, int] | None:
    match = _CODE.match(code)
    return (match.group(1).lower(), int(match.group(2))) if match else None


def check_name(raw: str | None, what: str, warnings: list[str]) -> str | None:
    """A usable name, or None (with a specific warning) when it is unnamed, empty after cleaning or absurd."""
    if raw is None or is_unnamed(raw):
        return None
    name = _SPACES.sub(" ", clean(raw))
    if len(name) > MAX_NAME:
        warnings.append(f"{what}: name of {len(name)} characters ignored (limit {MAX_NAME}): {short(name)}")
        return None
    norm = normalize_name(name)
    if not norm:
        warnings.append(f"{what}: name {short(name)} has no letters or digits; ignored")
        return None
    if norm.split()[0] in _PLACEHOLDERS:  # "Unnamed woman", "Unknown (bartender)": a description, not a name
        return None
    return name


def check_text(raw: str | None, what: str, warnings: list[str], limit: int = MAX_TEXT) -> str | None:
    """A note to store, truncated (with a warning) when a model rambles; None when empty."""
    text = clean(raw)
    if not text:
        return None
    if len(text) > limit:
        warnings.append(f"{what}: {len(text)} characters truncated to {limit}")
        text = text[:limit]
    return text


def short(text: str, limit: int = 60) -> str:
    """A value quoted in a warning: repr'd and cut, so hostile output cannot flood the logs."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
