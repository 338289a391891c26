"""The pydantic contract: timestamps, content rules, shifting, JSON Schema export."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from annotator.schemas import SCHEMAS, NextSegmentPlot, Script, format_timestamp, json_schema, parse_timestamp
from jobs.cli import app


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:45", 45),
        ("1:05", 65),
        ("01:02:03", 3723),
        ("02:03.5", 123.5),
        ("75", 75),
        (12.25, 12.25),
        ("90:00", 5400),
    ],
)
def test_timestamps_parse(text, seconds):
    assert parse_timestamp(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "-00:05", "", True, None, "nan"])
def test_bad_timestamps_are_named(bad):
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(bad)


def test_format_round_trips():
    assert format_timestamp(65.4) == "01:05"
    assert parse_timestamp(format_timestamp(3599)) == 3599


def test_event_needs_a_content_field_and_blank_fields_are_dropped():
    with pytest.raises(ValidationError, match="none of dialogue"):
        Script.model_validate(
            {"script": [{"scene_id": 1, "events": [{"timestamp": "00:01", "character": "A"}]}]}
        )
    script = Script.model_validate(
        {
            "script": [
                {
                    "scene_id": 1,
                    "events": [
                        {
                            "timestamp": "00:01",
                            "character": "A",
                            "action": "waves",
                            "dialogue": "",
                            "subtext": "null",
                        }
                    ],
                }
            ]
        }
    )
    event = script.events()[0]
    assert event.dialogue is None and event.subtext is None


def test_shifted_moves_every_time():
    script = Script.model_validate(
        {
            "script": [
                {
                    "scene_id": 1,
                    "start_timestamp": "00:00",
                    "events": [
                        {"timestamp": "00:05", "end_timestamp": "00:07", "character": "A", "action": "sits"}
                    ],
                }
            ],
            "high_points": [{"id": 1, "time_range": ["00:04", "00:08"]}],
        }
    )
    moved = script.shifted(100)
    assert moved.script[0].start_timestamp == 100
    assert (moved.events()[0].timestamp, moved.events()[0].end_timestamp) == (105, 107)
    assert moved.high_points[0].time_range == [104, 108]
    assert script.events()[0].timestamp == 5  # the original is untouched


def test_plot_answer_is_lenient_where_models_are_sloppy():
    plot = NextSegmentPlot.model_validate(
        {
            "segment_info": {"segment_index": 2},
            "characters": [{"id": " unknown_001 ", "match_confidence": "HIGH"}],
            "extra_key_from_model": 1,
        }
    )
    assert plot.characters[0].id == "unknown_001" and plot.characters[0].match_confidence == "high"
    assert plot.characters[0].name == "Unnamed"


def test_answer_schemas_ask_for_clock_times_and_the_record_stores_seconds():
    script_schema = json.dumps(json_schema("script"))
    assert "MM:SS" in script_schema
    record = json_schema("record")
    event = record["$defs"]["ScriptEvent"]["properties"]["timestamp"]
    assert event["type"] == "number"
    with pytest.raises(KeyError, match="unknown schema"):
        json_schema("nope")


def test_cli_exports_every_schema():
    runner = CliRunner()
    for name in SCHEMAS:
        result = runner.invoke(app, ["schema", name])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["type"] == "object"
    assert runner.invoke(app, ["schema", "nope"]).exit_code == 2
