"""What Gemini refuses in a response schema, with the texts it refuses it with (docs/simulator.md, "As strict as
the real services").

Two fields carry a schema, and they fail differently:

- `responseSchema` is a protobuf message (`Schema`, a select subset of OpenAPI 3.0). A key it does not define
  (`additionalProperties`, `$defs`, `$ref`, `$schema`, …) is refused by the JSON parser before anything else,
  one field violation per key: "Invalid JSON payload received. Unknown name "X" at
  'generation_config.response_schema.properties[1].value.items': Cannot find field." (python-genai#1815,
  pickeld/pick-a-recipe#29, QuantumNous/new-api#1037). A `type` given as a list is refused the same way ("Proto
  field is not repeating, cannot start list.", prism-php/prism#974).
- `responseJsonSchema` takes JSON Schema; keywords it does not support are ignored, not refused (nutrient.io's
  Gemini compatibility notes; discuss.ai.google.dev "unsupported Schema keywords being ignored"). What it does
  refuse: a `$ref` with siblings other than `description` and `default` (anomalyco/opencode#12295,
  su-kaka/gcli2api#374), a `$ref` that points nowhere (google-gemini/gemini-cli#13326), and a schema whose
  constraint is too large to serve.

"Too large" has no documented number ("There is no exact guidance", python-genai#660). The simulator applies
two measured budgets, to the schema with every `$ref` expanded:

- the sum of the array length bounds (`maxItems`, or `minItems` when larger), counted once per use: above 960
  Gemini answers a bare 400 "Request contains an invalid argument." (python-genai#2170 measured ~960;
  vercel/ai#21192 the same bare 400 on gemini-3.8-flash);
- an estimate of the states of the constraint (`constraint_states`): the characters of property names and enum
  values, a fixed cost per numeric bound and per date/time format, and a bounded array's item multiplied by its
  bound (the causes the error text names). Above `STATE_BUDGET` the answer is the "too many states" 400
  (python-genai#660, flutter/genui#428, cline/cline#7897). The budget is the simulator's, set so a schema of
  python-genai#660's size (~200,000 characters) is refused and the engine's (under 1,000 states) are far inside it.
"""

from __future__ import annotations

import json

from annotator.simulator.errors import SimError

MAX_ITEMS_BUDGET = 960
STATE_BUDGET = 20_000
_BOUND_STATES = 100  # a numeric minimum/maximum: a range matcher over digits
_FORMAT_STATES = 200  # a date-time/date/time/email/uuid string: a format matcher
_FORMATS = {"date-time", "date", "time", "duration", "email", "uuid", "ipv4", "ipv6", "uri"}
_REF_SIBLINGS = {"$ref", "description", "default"}
# where JSON Schema keeps subschemas (everything else, such as enum, default or required, holds values)
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "contains")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")

TOO_MANY_STATES = (
    "The specified schema produces a constraint that has too many states for serving.  Typical causes of this "
    "error are schemas with lots of text (for example, very long property or enum names), schemas with long "
    "array length limits (especially when nested), or schemas using complex value matchers (for example, "
    "integers or numbers with minimum/maximum bounds or strings with complex formats like date-time)"
)
OPAQUE = "Request contains an invalid argument."

# google.ai.generativelanguage.v1beta.Schema's fields; the JSON parser takes both spellings of each
_PROTO_FIELDS = {
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
}  # fmt: skip
_PROTO_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"}


def check_response_schema(config: dict) -> None:
    """Refuse (SimError 400) a generationConfig whose response schema Gemini would refuse."""
    for key in ("responseSchema", "response_schema"):
        if isinstance(config.get(key), dict):
            _check_proto_schema(config[key], "generation_config.response_schema")
    for key in ("responseJsonSchema", "response_json_schema"):
        if isinstance(config.get(key), dict):
            check_json_schema(config[key])


# -- responseSchema: a protobuf message ----------------------------------------------------------------------
def _check_proto_schema(schema: dict, where: str) -> None:
    violations: list[tuple[str, str]] = []
    _walk_proto(schema, where, violations)
    if violations:
        raise SimError(
            400,
            "\n".join(text for _, text in violations),
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": f, "description": text} for f, text in violations],
                }
            ],
        )


def _walk_proto(node: object, where: str, out: list[tuple[str, str]]) -> None:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if _camel(key) not in _PROTO_FIELDS:
            out.append(
                (
                    where,
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.",
                )
            )
        elif _camel(key) == "type" and isinstance(value, list):
            text = f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Proto field is not repeating, cannot start list."
            out.append((where, text))
        elif _camel(key) == "type" and str(value).upper() not in _PROTO_TYPES:
            text = f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), {json.dumps(value)}"
            out.append((f"{where}.type", text))
    properties = node.get("properties")
    if isinstance(properties, dict):
        for i, sub in enumerate(properties.values()):
            _walk_proto(sub, f"{where}.properties[{i}].value", out)
    _walk_proto(node.get("items"), f"{where}.items", out)
    for key in ("anyOf", "any_of"):
        for i, sub in enumerate(node.get(key) or []):
            _walk_proto(sub, f"{where}.any_of[{i}]", out)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -- responseJsonSchema: JSON Schema ------------------------------------------------------------------------
def check_json_schema(schema: dict) -> None:
    """$ref rules first (a schema that does not resolve has no size), then the two budgets."""
    _check_refs(schema, schema, [])
    if max_items_sum(schema) > MAX_ITEMS_BUDGET:
        raise SimError(400, OPAQUE)
    if constraint_states(schema) > STATE_BUDGET:
        raise SimError(400, TOO_MANY_STATES)


def _check_refs(node: object, root: dict, path: list[str]) -> None:
    if isinstance(node, list):
        for i, sub in enumerate(node):
            _check_refs(sub, root, [*path, str(i)])
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        extra = set(node) - _REF_SIBLINGS
        if extra:
            raise SimError(
                400,
                f"$ref '{ref.rsplit('/', 1)[-1]}' was set alongside unsupported fields. If a schema node has "
                "$ref set, then only description and default can be set alongside it.",
            )
        if _resolve(root, ref) is None:
            raise SimError(400, f"reference to undefined schema at {'.'.join(path) or '(root)'}")
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):  # name → schema
            for name, sub in value.items():
                _check_refs(sub, root, [*path, key, name])
        elif key in _SCHEMA_KEYS or key in _SCHEMA_LISTS:  # a schema, or a list of them
            _check_refs(value, root, [*path, key])


def _resolve(root: dict, ref: str) -> dict | None:
    """A local JSON pointer (`#/$defs/X`, `#/properties/a/items`); remote references resolve to nothing."""
    if not ref.startswith("#"):
        return None
    node: object = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node if isinstance(node, dict) else None


def _subschemas(node: dict):
    """(subschema, repeat) for each schema below this node; `repeat` is how often a bounded array's item
    is unrolled."""
    properties = node.get("properties")
    if isinstance(properties, dict):
        for sub in properties.values():
            yield sub, 1
    items = node.get("items")
    if isinstance(items, dict):
        yield items, max(1, _bound(node))
    for key in _SCHEMA_LISTS:
        for sub in node.get(key) or []:
            yield sub, 1
    if isinstance(node.get("additionalProperties"), dict):
        yield node["additionalProperties"], 1


def _bound(node: dict) -> int:
    values = [node.get("maxItems"), node.get("minItems")]
    return max([int(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)], default=0)


def _expanded(node: dict, root: dict, stack: tuple[str, ...]) -> tuple[dict, tuple[str, ...]] | None:
    """The node with its $ref followed; None for a reference already being expanded (a recursive schema is
    unrolled to a finite depth by Gemini, discuss.ai.google.dev "recursive schema definition")."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node, stack
    if ref in stack:
        return None
    target = _resolve(root, ref)
    return (target, (*stack, ref)) if target is not None else None


def _total(schema: dict, own, *, repeated: bool) -> int:
    """`own(node)` summed over every node of the schema, each `$ref` expanded where it is used; with `repeated`,
    a subschema counts as many times as its array may repeat it."""

    def walk(node: object, stack: tuple[str, ...]) -> int:
        if not isinstance(node, dict):
            return 0
        found = _expanded(node, schema, stack)
        if found is None:
            return 0
        node, stack = found
        return own(node) + sum(
            (repeat if repeated else 1) * walk(sub, stack) for sub, repeat in _subschemas(node)
        )

    return walk(schema, ())


def max_items_sum(schema: dict) -> int:
    """The array length bounds of the schema, each counted once per place it is used."""
    return _total(
        schema,
        lambda node: _bound(node) if "items" in node or node.get("type") == "array" else 0,
        repeated=False,
    )


def constraint_states(schema: dict) -> int:
    """The simulator's estimate of the size of the constraint Gemini compiles from a schema (module docstring)."""
    return _total(schema, _own_states, repeated=True)


def _own_states(node: dict) -> int:
    states = 1
    properties = node.get("properties")
    if isinstance(properties, dict):
        states += sum(len(name) for name in properties)
    for value in node.get("enum") or []:
        states += len(json.dumps(value))
    states += _BOUND_STATES * sum(
        key in node for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    )
    if node.get("format") in _FORMATS:
        states += _FORMAT_STATES
    return states + len(str(node.get("pattern") or ""))
