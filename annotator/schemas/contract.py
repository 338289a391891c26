"""What an answer must keep to beyond its schema: only the schema's keys, only the character codes it was given
(or declares as new), only times inside the clip it was shown.

The answer schemas are tolerant on purpose (every field has a default, extra keys are ignored) so that stored
answers and records written by older versions still read. That tolerance must not reach a fresh answer: a script
under a wrapper key, or a `dialog` where `dialogue` was asked for, would validate with its content silently
dropped. So these rules are applied once, where an answer enters (`annotator/gateway/structured.check_answer`),
and a breach gets a repair turn that quotes it. The quality gates use `times_outside` too, so plot and script
times obey one rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from annotator.schemas.plot import CODE_IN_TEXT, code_key

TIME_TOLERANCE_S = 2.0  # models round to whole seconds and may place a last event on the clip's final frame
# `matched_from` naming no known code is not a breach: DESIGN §5 says the CPM treats it as new (and logs it)
_CODES_NOT_CHECKED = frozenset({"matched_from"})


class AnswerContract(BaseModel):
    """What the request of one answer told the model: the codes it may use and the clip's length."""

    model_config = ConfigDict(frozen=True)
    # canonical spellings (`code_key`) of the codes the prompt showed; None: the answer's codes are not checked
    known_codes: frozenset[str] | None = None
    clip_s: float | None = Field(default=None, description="seconds of video shown; None: times not checked")
    time_tolerance_s: float = TIME_TOLERANCE_S


def codes_in(value: object, skip: frozenset[str] = frozenset()) -> set[str]:
    """Every character code in the strings of a model, dict or list, nested (field names in `skip` left out)."""
    found: set[str] = set()
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if name not in skip:
                found |= codes_in(getattr(value, name), skip)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                found |= codes_in(item, skip)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= codes_in(item, skip)
    elif isinstance(value, str):
        found |= {code_key(m.group(0)) for m in CODE_IN_TEXT.finditer(value)}
    return found


def unknown_keys(schema: type[BaseModel], raw: object, where: str = "") -> list[str]:
    """Paths of the keys in `raw` (an answer's parsed JSON) that no field of `schema` takes, at any depth: what
    validation would silently ignore. Read from the schema's types, so it answers for invalid answers too."""
    if not isinstance(raw, dict):
        return []
    fields: dict[str, FieldInfo] = {}
    for name, info in schema.model_fields.items():
        fields[name] = info
        if info.alias:
            fields[info.alias] = info
    found: list[str] = []
    for key, item in raw.items():
        path = f"{where}.{key}" if where else str(key)
        info = fields.get(key)
        if info is None:
            found.append(path)
            continue
        model = _model_in(info.annotation)
        if model is not None and isinstance(item, list):
            found += [p for i, part in enumerate(item) for p in unknown_keys(model, part, f"{path}.{i}")]
        elif model is not None:
            found += unknown_keys(model, item, path)
    return found


def _model_in(annotation: object) -> type[BaseModel] | None:
    """The schema class inside a field's type (`X`, `X | None`, `list[X]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def extra_keys(schema: type[BaseModel], raw: object) -> str | None:
    """The unknown keys of an answer as a line a repair turn can quote, or None."""
    extra = unknown_keys(schema, raw)
    if not extra:
        return None
    shown = ", ".join(extra[:8]) + (f" and {len(extra) - 8} more" if len(extra) > 8 else "")
    return (
        f"keys the schema does not have (their content would be lost): {shown}; use exactly the schema's keys, "
        "with no wrapper object around the answer"
    )


def times_outside(times: Iterable[tuple[str, float]], clip_s: float, tolerance_s: float) -> list[str]:
    """The times (label, clip-relative seconds) that fall outside a clip of `clip_s` seconds: one rule for plot
    answers at the gateway and for scripts there and in the quality gates."""
    problems = []
    for label, seconds in times:
        if seconds > clip_s + tolerance_s:
            problems.append(f"{label} at {seconds:.0f}s is after the clip's end ({clip_s:.0f}s)")
        elif seconds < -tolerance_s:
            problems.append(f"{label} at {seconds:.0f}s is before the clip's start")
    return problems


def breaches(value: BaseModel, contract: AnswerContract) -> list[str]:
    """What a schema-valid answer does against the codes and times of its contract, as lines a repair turn can
    quote; [] when none (its keys are checked before validation: `extra_keys`)."""
    problems = []
    if contract.known_codes is not None:
        declared = value.declared_codes() if hasattr(value, "declared_codes") else set()
        unknown = sorted(codes_in(value, _CODES_NOT_CHECKED) - contract.known_codes - declared)
        if unknown:
            new = (
                "; a new character is listed under `characters` with a new id"
                if hasattr(value, "declared_codes")
                else ""
            )
            problems.append(
                f"character ids that are not among the ones you were given: {', '.join(unknown)}; use only "
                f"those ids{new}"
            )
    if contract.clip_s is not None and hasattr(value, "clip_times"):
        outside = times_outside(value.clip_times(), contract.clip_s, contract.time_tolerance_s)
        if outside:
            shown = "; ".join(outside[:8]) + (f"; and {len(outside) - 8} more" if len(outside) > 8 else "")
            problems.append(f"times outside the clip (MM:SS from the clip's first frame): {shown}")
    return problems
