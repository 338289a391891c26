"""The Label Studio conversion without a server: seconds ↔ frames at the declared frame rate, a record's
scenes and events as timeline regions, and an annotation back into a corrected segment and cast corrections."""

from __future__ import annotations

import copy
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotator.schemas import CharacterProfile, Record
from jobs.review.frames import frame_at, frame_end_s, frame_start_s, span_to_frames
from jobs.review.ls_export import _task
from jobs.review.ls_format import Annotation, Task, code_of_choice, labeling_config
from jobs.review.ls_import import convert, convert_task

FPS = 6.0
CAST = {
    "char_001": CharacterProfile(id="char_001", name="Nora Vance", status="named"),
    "char_002": CharacterProfile(id="char_002", name="Elias Crane", status="named"),
}


def resolve(code: str) -> CharacterProfile | None:
    return CAST.get(code)


def record() -> Record:
    """A segment from 60 s to 90 s of its film, proxy cut at the segment start: two scenes, four events."""
    events_1 = [
        {"timestamp": 61.0, "character": "Environment", "action": "Rain on the glass.", "audio_cue": "rain"},
        {
            "timestamp": 64.5,
            "character": "Nora Vance",
            "character_id": "char_001",
            "dialogue": "Who's there?",
        },
        {
            "timestamp": 70.0,
            "character": "Elias Crane",
            "character_id": "char_002",
            "dialogue": "A passenger.",
        },
    ]
    events_2 = [
        {
            "timestamp": 80.0,
            "end_timestamp": 83.0,
            "character": "Nora Vance",
            "character_id": "char_001",
            "action": "Lifts the phone.",
        }
    ]
    scenes = [
        {
            "scene_id": 1,
            "location": "Ticket hall",
            "type": "Interior",
            "time": "Night",
            "start_timestamp": 60.0,
            "end_timestamp": 76.0,
            "events": events_1,
        },
        {"scene_id": 2, "location": "Kitchen", "type": "Interior", "mood": "Uneasy", "events": events_2},
    ]
    return Record.model_validate(
        {
            "id": "rec-2",
            "video": {
                "uri": "/films/film.mp4",
                "video_id": "vid",
                "start_s": 60.0,
                "end_s": 90.0,
                "proxy_uri": "/out/proxies/vid/seg_0002.mp4",
                "segment_index": 2,
            },
            "messages": [],
            "script": {"script": scenes},
            "thinking": "",
            "plot": {},
            "characters": [],
            "meta": {"job": "j", "pipeline_version": "p", "engine_version": "e"},
        }
    )


# -- frames ---------------------------------------------------------------------------------------------
def test_frames_count_from_one_and_a_frame_starts_at_its_index_minus_one_over_the_rate():
    assert frame_at(0.0, FPS) == 1
    assert frame_at(1.0, FPS) == 7  # frame 7 is shown from 6/6 s
    assert frame_start_s(7, FPS) == 1.0 and frame_end_s(6, FPS) == 1.0
    assert span_to_frames(4.0, 9.0, FPS) == (25, 54)  # [4, 9) s: frames 25..54 inclusive
    assert span_to_frames(4.0, 4.0, FPS) == (25, 25)  # an instant is one frame
    assert frame_at(0.9999999, FPS) == 7  # float noise under a frame boundary is the boundary
    with pytest.raises(ValueError, match="frame rate"):
        frame_at(1.0, 0.0)


@given(
    st.integers(min_value=0, max_value=20_000),
    st.integers(min_value=1, max_value=2_000),
    st.sampled_from([6.0, 24.0, 25.0, 30.0, 29.97]),
)
def test_a_span_on_frame_boundaries_comes_back_from_its_frames_exactly(start_frame, length, fps):
    start, end = start_frame / fps, (start_frame + length) / fps
    first, last = span_to_frames(start, end, fps)
    assert frame_start_s(first, fps) == pytest.approx(start, abs=1e-9)
    assert frame_end_s(last, fps) == pytest.approx(end, abs=1e-9)


@given(st.floats(min_value=0, max_value=3600), st.sampled_from([6.0, 24.0, 29.97]))
def test_any_time_falls_inside_the_frame_it_maps_to(t, fps):
    f = frame_at(t, fps)
    assert frame_start_s(f, fps) - 1e-6 <= t < frame_end_s(f, fps) + 1e-6


# -- record → task --------------------------------------------------------------------------------------
def test_a_task_holds_the_proxy_the_rate_and_every_scene_and_event_as_a_timeline_region():
    task = _task(record(), 60.0, FPS, "vid", resolve, "/data/local-files/?d=out/proxies/vid/seg_0002.mp4")
    assert task.data["fps"] == FPS and task.data["v2s_record"] == "rec-2"
    regions = {r.id: r for r in task.predictions[0].result if r.type == "timelinelabels"}
    assert list(regions) == ["sc1", "sc2", "sc1e1", "sc1e2", "sc1e3", "sc2e1"]
    # proxy seconds = absolute − 60; frames from 1 at 6 fps
    assert regions["sc1"].value.ranges[0].model_dump() == {"start": 1, "end": 96}  # [0, 16) s
    # no start_timestamp: the scene starts at its first event (80 s), the end of the segment ends it
    assert regions["sc2"].value.ranges[0].model_dump() == {"start": 121, "end": 180}  # [20, 30) s
    assert regions["sc1e2"].value.ranges[0].model_dump() == {"start": 28, "end": 60}  # [4.5, 10) s
    assert regions["sc2e1"].value.ranges[0].model_dump() == {"start": 121, "end": 138}  # [20, 23) s
    choices = {r.id: r.value.choices[0] for r in task.predictions[0].result if r.type == "choices"}
    assert choices["sc1e1"] == "Environment" and code_of_choice(choices["sc1e3"]) == "char_002"
    config = labeling_config(["Nora Vance [char_001]", 'A "quoted" <name> [char_009]'])
    root = ElementTree.fromstring(config)  # well-formed whatever the names hold
    assert root.find("Video").get("frameRate") == "$fps"
    values = [c.get("value") for c in root.iter("Choice")]
    assert values == ["Environment", "Nora Vance [char_001]", 'A "quoted" <name> [char_009]']


# -- annotation → corrections ---------------------------------------------------------------------------
def _annotated(task: Task, edit) -> Task:
    result = [r.model_dump(mode="json", exclude_none=True) for r in task.predictions[0].result]
    edit(result)
    annotated = copy.deepcopy(task)
    annotated.id = 7
    annotated.annotations = [
        Annotation.model_validate(
            {"id": 3, "result": result, "completed_by": 5, "updated_at": "2026-12-03T10:00:00Z"}
        )
    ]
    return annotated


def _set(result: list[dict], region: str, name: str, text: str) -> None:
    (item,) = [r for r in result if r["id"] == region and r["from_name"] == name]
    item["value"]["text"] = [text]


def test_an_unchanged_annotation_is_the_record_itself_to_the_second():
    rec = record()
    task = _annotated(_task(rec, 60.0, FPS, "vid", resolve, "v.mp4"), lambda result: None)
    segment, renames = convert_task(task, task.annotations[0], rec, resolve, "rev@example.com", "t")
    assert renames == [] and segment.changes == []
    events = [e for scene in segment.scenes for e in scene.events]
    assert [e.timestamp_s for e in events] == [61.0, 64.5, 70.0, 80.0]  # not rounded to frames
    assert events[3].end_s == 83.0 and events[0].end_s is None  # an open end stays open
    assert segment.scenes[1].start_s is None and segment.scenes[0].end_s == 76.0
    assert [e.character_code for e in events] == [None, "char_001", "char_002", "char_001"]


def test_edits_moves_deletions_and_a_renamed_character_come_back_as_corrections():
    rec = record()

    def edit(result: list[dict]) -> None:
        _set(result, "sc1e3", "dialogue", "Just a passenger, waiting.")
        _set(result, "sc1e3", "character_name", "Captain Elias Crane")
        for r in result:
            if r["id"] == "sc2e1":  # moved two seconds later: frames 133..150
                r["value"]["ranges"] = [{"start": 133, "end": 150}]
        result[:] = [r for r in result if r["id"] != "sc1e1"]  # the rain deleted
        result.append(
            {
                "id": "c",
                "from_name": "cast",
                "to_name": "video",
                "type": "textarea",
                "value": {"text": ["merge char_002 into char_001", "split char_003"]},
            }
        )

    task = _annotated(_task(rec, 60.0, FPS, "vid", resolve, "v.mp4"), edit)
    review = convert([task], {"rec-2": rec}, {"vid": resolve}, "export.json", {5: "ann@example.com"})
    (segment,) = review.segments
    assert segment.reviewer == "ann@example.com" and segment.reviewed_at.isoformat().startswith(
        "2026-12-03T10"
    )
    events = [e for scene in segment.scenes for e in scene.events]
    assert [e.region_id for e in events] == ["sc1e2", "sc1e3", "sc2e1"]
    assert events[1].dialogue == "Just a passenger, waiting." and events[1].character == "Captain Elias Crane"
    assert events[2].timestamp_s == 82.0 and events[2].end_s == 85.0  # (133 − 1)/6 + 60, 150/6 + 60
    fields = {(c.region, c.field) for c in segment.changes}
    assert fields == {("sc1e1", "region"), ("sc1e3", "dialogue"), ("sc2e1", "start_s"), ("sc2e1", "end_s")}
    ops = [(c.op, c.code, c.target) for c in review.cast]
    assert ops == [
        ("rename", "char_002", "Captain Elias Crane"),
        ("merge", "char_002", "char_001"),
        ("split", "char_003", None),
    ]
    assert all(c.reviewer == "ann@example.com" for c in review.cast)


def test_a_task_of_no_known_record_and_a_bad_cast_line_are_refused_by_name():
    rec = record()
    task = _annotated(_task(rec, 60.0, FPS, "vid", resolve, "v.mp4"), lambda result: None)
    with pytest.raises(ValueError, match=r"export\.json task 7: unknown segment: record rec-2"):
        convert([task], {}, {"vid": resolve}, "export.json", {})

    def bad(result: list[dict]) -> None:
        result.append({"id": "c", "from_name": "cast", "type": "textarea", "value": {"text": ["rename it"]}})

    with pytest.raises(ValueError, match="task 7 cast line 1: 'rename it' is not a cast correction"):
        convert([_annotated(task, bad)], {"rec-2": rec}, {"vid": resolve}, "export.json", {})
    unreviewed = task.model_copy(update={"annotations": []})
    assert convert([unreviewed], {"rec-2": rec}, {}, "x", {}).unreviewed == ["x task 7"]
