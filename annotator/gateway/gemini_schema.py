"""The stage's JSON Schema as Gemini's `responseJsonSchema` takes it.

pydantic writes a field whose type is a model as a `$ref` plus the field's own keywords (`title`, `examples`,
`deprecated`, …). Gemini refuses a `$ref` with any sibling but `description` and `default` (400 "$ref 'X' was
set alongside unsupported fields", anomalyco/opencode#12295), so those siblings are dropped: they only document
the field, and the referenced schema keeps its own. Everything else goes as pydantic wrote it (keywords
Gemini does not support are ignored by it, not refused).
"""

from __future__ import annotations

import threading

_REF_SIBLINGS = ("$ref", "description", "default")
_cleaned: dict[
    int, tuple[dict, dict]
] = {}  # id(schema) → (schema, cleaned): stage schemas are cached objects
_lock = threading.Lock()


def for_gemini(schema: dict | None) -> dict | None:
    """The schema with every `$ref` node reduced to `$ref`, `description` and `default`; the same object when
    nothing needs dropping. Memoised per schema object (answer_schema() returns one object per stage)."""
    if schema is None:
        return None
    with _lock:
        found = _cleaned.get(id(schema))
        if found is not None and found[0] is schema:
            return found[1]
    cleaned = _clean(schema)
    with _lock:
        if len(_cleaned) > 64:  # a bound, for callers that build schemas per request
            _cleaned.clear()
        _cleaned[id(schema)] = (schema, cleaned)
    return cleaned


def _clean(node: object) -> object:
    if isinstance(node, list):
        items = [_clean(item) for item in node]
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str) and set(node) - set(_REF_SIBLINGS):
        return {key: node[key] for key in _REF_SIBLINGS if key in node}
    values = {key: _clean(value) for key, value in node.items()}
    return node if all(values[key] is node[key] for key in node) else values
