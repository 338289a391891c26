"""Answers that parse but break their contract, made from the honest answer (docs/simulator.md, "Scripted fault
scenarios"): a wrapper key around it, misspelt keys, a character code nobody gave, times outside the clip, a
runaway answer megabytes long, the schema's empty template. Each keeps the rest of the answer as it was, so a repair turn that gets the honest
answer again leaves no trace in the output."""

from __future__ import annotations

import copy
from typing import Literal

from annotator.schemas.timecode import format_timestamp, parse_timestamp

Misshape = Literal[
    "wrapped_answer", "misspelt_keys", "unknown_code", "times_outside", "oversized", "degenerate_template"
]
MISSHAPES: tuple[str, ...] = Misshape.__args__  # type: ignore[attr-defined]

WRAPPER_KEY = "response"  # the key models wrap answers in (anthropics/claude-agent-sdk-python#374)
MISSPELT = {"dialogue": "dialog", "narrative": "narration", "relationship": "relation"}
UNKNOWN_CODE = "char_999"
_TEXT_KEYS = ("narrative", "thinking", "action", "description")  # where a sentence naming a stranger goes
_TIME_KEYS = frozenset({"timestamp", "first_appear", "start_timestamp", "end_timestamp"})
TIME_SHIFT_S = 3600.0  # an hour late: times counted from the film's start, not the clip's
OVERSIZED_BYTES = 2_000_000


def misshape(kind: str, body: dict, size_bytes: int = OVERSIZED_BYTES) -> dict:
    """The honest answer `body` changed as `kind` says (a copy; the body is left alone)."""
    data = copy.deepcopy(body)
    if kind == "wrapped_answer":
        return {WRAPPER_KEY: data}
    if kind == "misspelt_keys":
        if not _rename(data):  # an answer with none of those keys still gets one the schema lacks
            data["notes"] = "(the simulator added this key)"
        return data
    if kind == "unknown_code":
        _name_a_stranger(data)
        return data
    if kind == "times_outside":
        _shift_times(data)
        return data
    if kind == "oversized":
        return _loop(data, size_bytes)
    if kind == "degenerate_template":
        return _emptied(data)
    raise ValueError(f"unknown misshape {kind!r}; choose one of {', '.join(MISSHAPES)}")


def _rename(value: object) -> bool:
    renamed = False
    if isinstance(value, dict):
        for old, new in MISSPELT.items():
            if old in value:
                value[new] = value.pop(old)
                renamed = True
        for item in value.values():
            renamed = _rename(item) or renamed
    elif isinstance(value, list):
        for item in value:
            renamed = _rename(item) or renamed
    return renamed


def _name_a_stranger(data: dict) -> None:
    """The first free text gets a sentence about `char_999`, and a plot's first main event involves him."""
    summary = data.get("plot_summary")
    events = summary.get("main_events") if isinstance(summary, dict) else None
    if events:
        events[0].setdefault("involved_characters", []).append(UNKNOWN_CODE)
    target = _first_text(data)
    if target is None:
        data.setdefault("meta", {}).setdefault("characters", []).append(UNKNOWN_CODE)
        return
    holder, key = target
    holder[key] = f"{holder[key]} {UNKNOWN_CODE} looks on.".strip()


def _first_text(value: object) -> tuple[dict, str] | None:
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str):
                return value, key
        items = list(value.values())
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _first_text(item)
        if found is not None:
            return found
    return None


def _shift_times(value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _TIME_KEYS and isinstance(item, str | int | float):
                value[key] = format_timestamp(parse_timestamp(item) + TIME_SHIFT_S)
            else:
                _shift_times(item)
    elif isinstance(value, list):
        for item in value:
            _shift_times(item)


def _loop(data: dict, size_bytes: int) -> dict:
    """The longest text repeated until the answer is `size_bytes` long: a model stuck in a loop
    (google-gemini/cookbook#327)."""
    holder, key = _longest_text(data) or (data, "notes")
    phrase = holder.get(key) or "and again"
    holder[key] = " ".join([phrase] * (size_bytes // (len(phrase.encode()) + 1) + 1))
    return data


def _longest_text(value: object, best: tuple[dict, str] | None = None) -> tuple[dict, str] | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and (best is None or len(item) > len(best[0][best[1]])):
                best = (value, key)
            else:
                best = _longest_text(item, best)
    elif isinstance(value, list):
        for item in value:
            best = _longest_text(item, best)
    return best


def _emptied(value: object) -> object:
    """The answer's shape with no data in it: every key kept, every text blank, every list empty, every
    number 0 — the template a schema-bound model fills in, filled with nothing (the degenerate answers users
    get from Gemini's batch endpoint with `responseJsonSchema`, crmne/ruby_llm#894)."""
    if isinstance(value, dict):
        return {key: _emptied(item) for key, item in value.items()}
    if isinstance(value, list):
        return []
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        return ""
    return value
