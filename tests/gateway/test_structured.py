"""Tolerant parsing of model answers and safe error texts."""

from __future__ import annotations

import pytest

from annotator.gateway.errors import redact, retry_after_seconds
from annotator.gateway.structured import InvalidAnswer, parse_json_object


def test_parses_fenced_json_with_prose_and_trailing_commas():
    text = 'Here you go:\n```json\n{"a": 1, "b": [1, 2,],}\n```\nHope it helps.'
    assert parse_json_object(text) == {"a": 1, "b": [1, 2]}


def test_parses_bare_json_and_rejects_non_objects():
    assert parse_json_object('{"x": {"y": "z"}}') == {"x": {"y": "z"}}
    with pytest.raises(InvalidAnswer, match="no JSON object"):
        parse_json_object("I cannot help with that.")


def test_repairs_a_truncated_object():
    value = parse_json_object('{"script": [{"scene_id": 1, "events": [')
    assert value["script"][0]["scene_id"] == 1


def test_redact_and_retry_after():
    assert redact("bad key AIza-secret-123 sent", ["AIza-secret-123"]) == "bad key *** sent"
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
