"""A video's whole script merged from its records (#32): scenes through the video, a scene that runs across a
cut joined, an event told on both sides of a cut kept once, holes kept as gaps, the cast with final names."""

from __future__ import annotations

import json

import jsonschema

from annotator.records import build_record
from annotator.schemas import DistilledThinking, Script, json_schema
from annotator.schemas.record import RecordVideo
from annotator.schemas.usage import StageUsage
from annotator.video_script import merge_video, merge_videos
from tests.export.shapes import CAST
from tests.support.db import plot_answer

USAGE = {s: StageUsage(model="m", prompt_version=f"{s}.v1") for s in ("plot", "script", "distill")}


def _record(index: int, start: float, end: float, scenes: list[dict], video_id: str = "vid-1"):
    """A record of segment `index` (clip-relative times in `scenes`, as a model answers)."""
    script = Script.model_validate({"meta": {"title": "Harbour"}, "script": scenes})
    return build_record(
        job_id="job",
        pipeline_version="pv",
        video=RecordVideo(
            uri=f"/films/{video_id}.mp4", video_id=video_id, start_s=start, end_s=end, segment_index=index
        ),
        plot=plot_answer(index, [{"id": "char_001", "name": "Mara Quinn"}], narrative=f"part {index}"),
        code_map={},
        script=script,
        thinking=DistilledThinking(plot_summary=f"summary {index}", thinking="..."),
        reasoning_content=None,
        stages=USAGE,
        resolve=CAST.get,
    )


def _scene(location: str, *events: tuple[str, str, str], **extra) -> dict:
    return {
        "scene_id": 1,
        "location": location,
        "type": "Interior",
        "time": "Day",
        "events": [{"timestamp": t, "character": c, "dialogue": d} for t, c, d in events],
        **extra,
    }


def test_a_scene_across_a_cut_is_one_scene_and_a_repeated_line_is_kept_once():
    first = _record(
        1,
        0.0,
        30.0,
        [
            _scene("Ticket hall", ("00:02", "char_001", "One ticket.")),
            _scene("Pier", ("00:20", "char_001", "Cast off."), ("00:29", "unknown_001", "Mind the rope.")),
        ],
    )
    second = _record(
        2,
        30.0,
        60.0,
        [
            # the pier scene goes on; the line at the cut is told again (the model saw it too)
            _scene("Pier", ("00:00", "unknown_001", "Mind the rope!"), ("00:10", "char_001", "Aye.")),
            _scene("Ferry deck", ("00:25", "char_001", "There it is.")),
        ],
    )
    merged = merge_video([second, first])  # any order
    assert [s.location for s in merged.script.script] == ["Ticket hall", "Pier", "Ferry deck"]
    assert [s.scene_id for s in merged.script.script] == [1, 2, 3]
    pier = merged.script.script[1]
    assert [(e.timestamp, e.dialogue) for e in pier.events] == [
        (20.0, "Cast off."),
        (29.0, "Mind the rope."),
        (40.0, "Aye."),
    ]
    assert merged.joined_scenes == 1 and merged.dropped_repeats == 1
    assert merged.segments == [first.id, second.id] and merged.gaps == []
    assert [s.summary for s in merged.storyline] == ["summary 1", "summary 2"]
    names = {c.code: c.name for c in merged.characters}
    assert names["char_001"] == "Mara Quinn"
    assert merged.script.meta.duration == "00:01:00"
    assert json.loads(merged.messages[1].content)["script"][1]["location"] == "Pier"
    jsonschema.validate(merged.model_dump(mode="json"), json_schema("video-script"))


def test_another_place_or_a_hole_in_the_records_starts_a_new_scene():
    first = _record(1, 0.0, 30.0, [_scene("Pier", ("00:20", "char_001", "Cast off."))])
    moved = _record(2, 30.0, 60.0, [_scene("Harbour office", ("00:05", "char_001", "Cast off."))])
    assert [s.location for s in merge_video([first, moved]).script.script] == ["Pier", "Harbour office"]
    later = _record(3, 90.0, 120.0, [_scene("Pier", ("00:05", "char_001", "Back again."))])
    merged = merge_video([first, later])  # segment 2 has no record (rejected or given up)
    assert [s.location for s in merged.script.script] == ["Pier", "Pier"]
    assert [(g.start_s, g.end_s) for g in merged.gaps] == [(30.0, 90.0)]


def test_one_row_per_video():
    rows = merge_videos(
        [
            _record(1, 0.0, 30.0, [_scene("Pier", ("00:01", "char_001", "a"))], "vid-b"),
            _record(1, 0.0, 30.0, [_scene("Pier", ("00:01", "char_001", "b"))], "vid-a"),
        ]
    )
    assert [r.id for r in rows] == ["vid-a", "vid-b"]


def test_a_character_never_named_is_called_by_what_they_look_like_not_by_a_code():
    """#32: the first 100 s of the sample film never names Elias; records must not teach a model to say
    `unknown_001` as a speaker. The code stays in `character_id`, so identity is kept."""
    record = _record(
        1,
        0.0,
        30.0,
        [_scene("Pier", ("00:02", "unknown_001", "Which boat?"), ("00:05", "char_001", "The first one."))],
    )
    speakers = [(e.character, e.character_id) for e in record.script.script[0].events]
    assert speakers == [("man in a grey cap", "unknown_001"), ("Mara Quinn", "char_001")]
    assert "unknown_001" not in record.messages[1].content
    (unnamed,) = [c for c in record.characters if c.code == "unknown_001"]
    assert unnamed.name is None  # a descriptor is no name: the cast says so
