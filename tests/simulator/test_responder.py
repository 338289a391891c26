"""The simulator's parts without HTTP: stage detection, identity rules, answers, Files store, token counts."""

from __future__ import annotations

import copy

import pytest

from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot, NextSegmentPlot, Script
from annotator.simulator.errors import SimError
from annotator.simulator.files import FileStore, UploadError
from annotator.simulator.gemini_api import file_id_from_uri, parse_duration
from annotator.simulator.prompt_reader import Stage, detect_stage, json_block, profiles
from annotator.simulator.responder import Clip, Responder
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.tokens import estimate
from tests.support.play import ADA_COAT, ADA_RAINCOAT, BEN_LOOK, PLAY, small_screenplay


def _next(responder: Responder, known: list[dict], start: float, end: float) -> NextSegmentPlot:
    prompt = render(
        "plot_next", segment_index=2, duration="00:30", character_context=known, previous_summary="Before."
    ).text
    return NextSegmentPlot.model_validate(responder.answer(Stage.PLOT_NEXT, [prompt], Clip(start, end)).body)


def test_stage_detection_by_schema_title_then_headings():
    first = render("plot_first", segment_index=1, duration="00:30").text
    nxt = render(
        "plot_next", segment_index=2, duration="00:30", character_context=[], previous_summary="x"
    ).text
    script = render("script", duration="00:30", character_profiles=[], synopsis="x").text
    distill = render("distill", plot={}, script={}).text
    assert detect_stage("NextSegmentPlot", [first], has_video=True) is Stage.PLOT_NEXT
    assert detect_stage("Script", [], has_video=True) is Stage.SCRIPT
    assert detect_stage(None, [first], has_video=True) is Stage.PLOT_FIRST
    assert detect_stage(None, [nxt], has_video=True) is Stage.PLOT_NEXT
    assert detect_stage(None, [script], has_video=True) is Stage.SCRIPT
    assert detect_stage(None, [distill], has_video=False) is Stage.DISTILL
    assert detect_stage(None, ["hello"], has_video=False) is Stage.GENERIC
    # a repair turn after the prompt does not hide the prompt's headings
    assert detect_stage(None, [nxt, "Your answer failed validation: ..."], has_video=True) is Stage.PLOT_NEXT


def test_json_blocks_round_trip_through_the_rendered_prompts():
    known = [{"id": "char_001", "name": "Ada", "aliases": ["A"], "appearance": "x\n```\ny"}]
    text = render(
        "plot_next", segment_index=2, duration="00:30", character_context=known, previous_summary="s"
    ).text
    assert profiles([text], "Known characters") == known
    assert json_block([text], "Plot") is None


def test_new_ids_are_numbered_after_the_highest_known_one():
    responder = Responder(small_screenplay())
    known = [
        {"id": "char_007", "name": "Cleo Park", "appearance": "elsewhere"},
        {"id": "unknown_002", "appearance": "someone", "former_codes": ["unknown_009"]},
    ]
    plot = _next(responder, known, 0, 30)
    ids = {c.name: c.id for c in plot.characters}
    assert ids == {"Ada Marsh": "char_010", "Cleo Park": "char_007", "Unnamed": "unknown_011"}


def test_unnamed_man_stays_unknown_until_named_and_reuses_his_id():
    responder = Responder(small_screenplay())
    known = [{"id": "unknown_001", "name": "Unnamed", "appearance": BEN_LOOK}]
    # 30–45 s: recognised by looks, still unnamed (named at 50 s), no name update yet
    plot = _next(responder, known, 30, 45)
    ben = next(c for c in plot.characters if c.id == "unknown_001")
    assert ben.name == "Unnamed" and ben.matched_from == "unknown_001" and plot.name_updates == []
    # 45–60 s: the naming line is in the clip
    plot = _next(responder, known, 45, 60)
    assert [(u.unknown_id, u.name) for u in plot.name_updates] == [("unknown_001", "Ben Okafor")]
    assert plot.name_updates[0].evidence == '"Ben? Ben Okafor? From school?" (00:05)'


def test_costume_change_without_her_name_spoken_gives_an_unknown_code():
    data = copy.deepcopy(PLAY)
    for event in data["script"]["script"][2]["events"]:
        if event.get("dialogue"):
            event["dialogue"] = event["dialogue"].replace("Ada", "Hey")
    responder = Responder(Screenplay.model_validate(data))
    known = [{"id": "char_001", "name": "Ada Marsh", "appearance": ADA_COAT}]
    plot = _next(responder, known, 60, 90)
    woman = next(c for c in plot.characters if c.appearance == ADA_RAINCOAT)
    assert woman.id == "unknown_003" and woman.name == "Unnamed" and woman.matched_from is None


def test_costume_changing_inside_the_clip_is_a_reintroduction():
    responder = Responder(small_screenplay())
    known = [{"id": "char_001", "name": "Ada Marsh", "appearance": ADA_COAT}]
    plot = _next(responder, known, 45, 75)  # coat at 45 and 50 s, raincoat at 70 s
    ada = [c for c in plot.characters if c.name == "Ada Marsh"]
    assert [(c.id, c.matched_from, c.appearance) for c in ada] == [("char_002", None, ADA_RAINCOAT)]


def test_recognised_character_reports_a_changed_look_in_new_info():
    responder = Responder(small_screenplay())
    known = [
        {"id": "char_001", "name": "Ada Marsh", "appearance": ADA_COAT, "appearance_history": [ADA_RAINCOAT]}
    ]
    plot = _next(responder, known, 60, 90)
    ada = next(c for c in plot.characters if c.id == "char_001")
    assert ada.matched_from == "char_001" and ada.new_info.appearance == ADA_RAINCOAT


def test_first_segment_numbers_char_and_unknown_codes_separately():
    responder = Responder(small_screenplay())
    body = responder.answer(Stage.PLOT_FIRST, ["This is clip 4, the first one."], Clip(0, 90, 7)).body
    plot = FirstSegmentPlot.model_validate(body)
    assert plot.segment_info.segment_index == 4  # as the prompt says; the proxy's tag (7) is never read
    assert [c.id for c in plot.characters] == ["char_001", "char_002", "char_003", "char_004"]
    assert [t.timestamp for t in plot.scene_transitions] == [30.0, 60.0]
    assert len({tuple(sorted((r.char1_id, r.char2_id))) for r in plot.relationships}) == len(
        plot.relationships
    )


def test_script_without_matching_profiles_falls_back_to_names():
    responder = Responder(small_screenplay())
    script = Script.model_validate(responder.answer(Stage.SCRIPT, ["x"], Clip(10, 40)).body)
    assert {e.character for e in script.events()} == {
        "Unnamed",
        "Ada Marsh",
        "Environment",
        "Dev Rao",
        "Cleo Park",
    }
    assert [s.start_timestamp for s in script.script] == [0.0, 20.0]


def test_answers_refuse_ranges_outside_the_screenplay():
    with pytest.raises(SimError, match="shows nothing"):
        Responder(small_screenplay()).answer(Stage.SCRIPT, ["x"], Clip(95, 120))


def test_file_store_upload_rules_and_expiry():
    now = [1000.0]
    store = FileStore(ttl_s=10, processing_s=2, clock=lambda: now[0])
    upload = store.start_upload(name=None, display_name="d", mime_type="text/plain", size=6)
    with pytest.raises(UploadError, match="offset 3"):
        store.append(upload, 3, b"abc", finalize=False)
    assert store.append(upload, 0, b"abc", finalize=False) is None
    stored = store.append(upload, 3, b"def", finalize=True)
    assert stored.state(now[0], 2) == "PROCESSING" and stored.state(now[0] + 2, 2) == "ACTIVE"
    resource = stored.resource("http://h", "v1beta", now[0], 2)
    assert resource["sizeBytes"] == "6" and resource["uri"] == f"http://h/v1beta/{stored.name}"
    page, token = store.list(page_size=1)
    assert [f.id for f in page] == [stored.id] and token is None
    now[0] += 10
    assert store.get(stored.id) is None
    short = store.start_upload(name="files/mine", display_name=None, mime_type="text/plain", size=5)
    with pytest.raises(UploadError, match="announced"):
        store.append(short, 0, b"abc", finalize=True)


def test_wire_helpers():
    assert parse_duration("12.5s", "x") == 12.5 and parse_duration({"seconds": 3, "nanos": 5e8}, "x") == 3.5
    with pytest.raises(SimError):
        parse_duration("soon", "x")
    assert file_id_from_uri("http://127.0.0.1:1/v1beta/files/abc123") == "abc123"
    assert file_id_from_uri("https://generativelanguage.googleapis.com/v1beta/files/x-1") == "x-1"
    assert file_id_from_uri("files/abc") == "abc"
    usage = estimate(prompt_chars=400, answer_chars=40, video_s=10, has_audio=True)
    assert (usage.text, usage.video, usage.audio, usage.output) == (100, 2580, 320, 10)
    assert estimate(prompt_chars=0, answer_chars=0, video_s=10, low_resolution=True, fps=2).video == 20 * 66
