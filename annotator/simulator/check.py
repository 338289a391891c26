"""Configuration checks (`v2s check`): a tiny request with a stage's real settings, answered from its schema.

The engine's check asks each stage's model once, with the stage's response schema, JSON mode, thinking and
output settings and a prompt under the heading `## Configuration check` that asks for the smallest JSON object
the schema allows. Over chat completions a video stage's check carries a blank clip in the stage's media shape
(frames or a video_url). A model bound to the schema answers with such an object; so does the simulator, built
from the schema sent (no screenplay is read, no media either: nothing of the film is shown).

Check requests pass every refusal a stage's request meets (key, model name, maxOutputTokens / max_tokens,
thinking level, vLLM's max_model_len and per-prompt media limit, Ollama's text and images only, OpenAI's
reasoning-model parameters), but they are recorded under endpoints of their own
(`check.generateContent`, `check.chat.completions`), are not numbered among the model calls and are not
played by behaviours or scenarios: those count and disturb the stages' calls, and a test that counts "12
calls for the film" keeps counting the same 12 whether or not the run checked its models first.
"""

from __future__ import annotations

import json

from annotator.simulator.prompt_reader import has_heading

CHECK_HEADING = "Configuration check"
CHECK_ENDPOINTS = {"gemini": "check.generateContent", "openai": "check.chat.completions"}


def is_check(texts: list[str]) -> bool:
    return has_heading(texts, CHECK_HEADING)


def looks_like_check(body: object) -> bool:
    """Whether a raw request body is a check, before it is parsed: so that a check the server refuses (an
    unknown model, a max_tokens too large) is recorded as a check too, not as a stage's model call."""
    texts: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            if len(value) < 100_000:  # media (base64) is never a prompt
                texts.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body.get("contents") or body.get("messages") if isinstance(body, dict) else None)
    return is_check(texts)


def check_answer(schema: dict | None) -> str:
    """The smallest JSON object `schema` allows (JSON mode without a schema: a one-field object)."""
    if not isinstance(schema, dict):
        return json.dumps({"check": "ok"})
    value = _minimal(schema, schema.get("$defs") or schema.get("definitions") or {}, depth=0)
    return json.dumps(value if isinstance(value, dict) and value else {"check": "ok"})


def _minimal(schema: dict, defs: dict, depth: int) -> object:
    if depth > 32:  # a recursive schema: stop where a model would, with nothing more
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _minimal(defs.get(ref.rsplit("/", 1)[-1], {}), defs, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            return _minimal(options[0], defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {
            name: _minimal(properties.get(name) or {}, defs, depth + 1)
            for name in schema.get("required") or []
        }
    if kind == "array":
        item = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_minimal(item, defs, depth + 1) for _ in range(int(schema.get("minItems") or 0))]
    if kind == "string":
        return "x" * int(schema.get("minLength") or 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None
