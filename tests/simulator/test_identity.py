"""The identity patterns the simulator plays from screenplay fields, on the bundled *Night Shift at Pier Nine*.

A descriptor named two segments later, name forms said one per segment, two mothers called "Mom", a group and
one guard singled out of it, a costume change with no name spoken, and the mirrors that must stay apart (same
surname, same given name, twins). Answers are built with `Responder.plot` from profiles shaped like the engine's
`CharacterProfile` dumps, and every answer is parsed with the plot schemas.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import scenedetect

from annotator.media import probe
from annotator.prompting import render
from annotator.schemas import CharacterProfile, FirstSegmentPlot, NextSegmentPlot, Script
from annotator.schemas.context import PROMPT_FIELDS
from annotator.schemas.script import ENVIRONMENT
from annotator.simulator.identity import Profiles, plot_identities, script_id
from annotator.simulator.prompt_reader import Stage
from annotator.simulator.responder import Clip, Responder
from annotator.simulator.screenplay import IDENTITY_SCREENPLAY, Screenplay
from annotator.simulator.window import Window
from tests.support.films import film_copy
from tests.support.media import scene_segments

MAX_SEGMENT_S = 60.0
SEGMENTS = [(0.0, 56.0), (56.0, 112.0), (112.0, 168.0), (168.0, 224.0), (224.0, 280.0), (280.0, 336.0)]


@pytest.fixture(scope="module")
def play() -> Screenplay:
    return Screenplay.load(IDENTITY_SCREENPLAY)


@pytest.fixture(scope="module")
def responder(play: Screenplay) -> Responder:
    return Responder(play)


def profile(id_: str, name: str | None, appearance: str, **extra) -> dict:
    return CharacterProfile(id=id_, name=name, appearance=appearance, **extra).model_dump(
        include=PROMPT_FIELDS, exclude_none=True
    )


def look(play: Screenplay, name: str, t: float = 0.0) -> str:
    return play.member(name).appearance_at(t)


def plot(responder: Responder, segment: int, known: list[dict] | None):
    start, end = SEGMENTS[segment - 1]
    body = responder.plot(Window(responder.screenplay, start, end), segment, [], known=known)
    return (FirstSegmentPlot if known is None else NextSegmentPlot).model_validate(body)


def by_name(answer) -> dict:
    return {c.name: c for c in answer.characters}


class Memory:
    """A naive stand-in for the CPM, enough to chain answers: new ids become profiles, matched ones take
    their name, aliases and new looks, name updates rename, same_as folds the other record in."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}

    def profiles(self) -> list[dict]:
        return [
            CharacterProfile(**r).model_dump(include=PROMPT_FIELDS | {"former_codes"}, exclude_none=True)
            for r in self.records.values()
        ]

    def apply(self, answer) -> None:
        for c in answer.characters:
            name = None if c.name == "Unnamed" else c.name
            record = self.records.get(c.id)
            if record is None:
                self.records[c.id] = {
                    "id": c.id,
                    "name": name,
                    "aliases": list(c.aliases),
                    "appearance": c.appearance,
                    "appearance_history": [],
                    "former_codes": [],
                }
                continue
            if name and record["name"] != name:
                if record["name"]:
                    record["aliases"].append(record["name"])
                record["name"] = name
            extra = c.new_info.aliases if c.new_info else []
            record["aliases"] = list(dict.fromkeys([*record["aliases"], *c.aliases, *extra]))
            record["aliases"] = [a for a in record["aliases"] if a != record["name"]]
            if c.new_info and c.new_info.appearance:
                record["appearance_history"].append(record["appearance"])
                record["appearance"] = c.new_info.appearance
        for update in answer.name_updates:
            self.records[update.unknown_id]["name"] = update.name
        for same in answer.same_as:
            gone, keep = self.records.pop(same.id), self.records[same.same_as]
            keep["former_codes"].append(same.id)
            for old in [gone["appearance"], *gone["appearance_history"]]:
                if old not in [keep["appearance"], *keep["appearance_history"]]:
                    keep["appearance_history"].append(old)


@pytest.fixture(scope="module")
def chain(responder: Responder) -> list[tuple[object, Memory]]:
    """Every segment's plot answer, each asked with the memory the answers before it built."""
    memory, out = Memory(), []
    for index in range(1, len(SEGMENTS) + 1):
        answer = plot(responder, index, None if index == 1 else memory.profiles())
        memory.apply(answer)
        out.append((answer, copy.deepcopy(memory)))  # what the script stage of that segment sees
    return out


# ── the screenplay is what it claims ─────────────────────────────────────────────────────────────────────
def _segments(screenplay: Screenplay) -> list[tuple[float, float]]:
    return scene_segments(screenplay, MAX_SEGMENT_S)


def _lines(play: Screenplay, text: str, start: float = 0.0, end: float = 1e9) -> list:
    pattern = re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.I)
    return [
        e
        for e in play.script.events()
        if start <= e.timestamp < end and e.dialogue and pattern.search(e.dialogue)
    ]


def test_the_identity_screenplay_has_the_patterns_it_is_built_for(play: Screenplay):
    assert _segments(play) == SEGMENTS
    assert 240 <= play.duration_s <= 360
    for scene, (start, end) in zip(play.script.script, play.scene_spans(), strict=True):
        assert (scene.start_timestamp, scene.end_timestamp) == (start, end) and start == int(start)
    assert set(play.script.meta.characters) == {c.name for c in play.cast}
    for member in play.cast:  # everyone speaks
        assert any(e.dialogue for e in play.script.events() if e.character == member.name), member.name
    assert play.shared_names() == {"mom", "tom"}

    sal = play.member("Sal Moreno")  # the Driver, named two segments later
    assert (sal.descriptor, sal.named_at) == ("Driver", 129.0)
    assert _lines(play, "Driver", 0, 56) and not _lines(play, "Sal", 0, sal.named_at)
    assert _lines(play, "Sal Moreno")[0].timestamp == sal.named_at
    for line in _lines(play, "Mr. Moreno"):  # said to Sal only: he is the one who answers
        after = min(
            (e for e in play.script.events() if e.timestamp > line.timestamp), key=lambda e: e.timestamp
        )
        assert after.character == "Sal Moreno"

    osei = play.member("Katherine Osei")  # one form a segment: seg 1, seg 3, seg 4 (and 5)
    forms = [(f.name, f.said_at) for f in osei.name_forms] + [(osei.name, osei.named_at)]
    assert [(name, next(i for i, (a, b) in enumerate(SEGMENTS, 1) if a <= t < b)) for name, t in forms] == [
        ("Dr. Osei", 1),
        ("Kate", 3),
        ("Katherine Osei", 4),
    ]
    for name, said_at in forms:
        assert _lines(play, name)[0].timestamp == said_at, name
    assert _lines(play, "Katherine Osei", *SEGMENTS[4])

    for mother, child in (("June Hale", "Tom Hale"), ("Rita Berg", "Tom Berg")):
        assert "Mom" in play.member(mother).aliases
        assert any(e.character == child for e in _lines(play, "Mom"))
    guards, ivo = play.member("the dock guards"), play.member("Ivo Brandt")
    assert guards.kind == "group" and ivo.kind == "individual" and ivo.named_at == 184.0
    assert _lines(play, "the dock guards")

    ana = play.member("Ana Moreno")  # changes at the start of segment 3, where nobody says her name
    assert [c.from_s for c in ana.costumes] == [SEGMENTS[2][0]]
    assert not _lines(play, "Ana", *SEGMENTS[2]) and _lines(play, "Ana", *SEGMENTS[3])
    lena, mira = play.member("Lena Petrov"), play.member("Mira Petrov")
    assert lena.appearance != mira.appearance
    assert lena.appearance.split(",")[:3] == mira.appearance.split(",")[:3]


def test_the_identity_film_renders_with_a_cut_at_every_scene_start(play, tmp_path):
    video = film_copy(play, tmp_path / "pier-nine.mp4", width=320, height=180, fps=6)
    info = probe(video)
    assert abs(info.duration_s - play.duration_s) <= 0.5 and info.has_audio
    found = [scene[0].seconds for scene in scenedetect.detect(str(video), scenedetect.ContentDetector())[1:]]
    assert found == [start for start, _ in play.scene_spans()[1:]]


def test_new_screenplay_fields_are_validated():
    base = {"name": "X", "appearance": "a"}
    with pytest.raises(ValueError, match="group"):
        Screenplay.model_validate(_one({**base, "kind": "group", "named_at": 5}))
    with pytest.raises(ValueError, match="named_at"):
        Screenplay.model_validate(_one({**base, "name_forms": [{"name": "Dr. X", "said_at": 1}]}))
    with pytest.raises(ValueError, match="time order"):
        Screenplay.model_validate(
            _one({**base, "named_at": 3, "name_forms": [{"name": "Dr. X", "said_at": 4}]})
        )
    with pytest.raises(ValueError, match="descriptor"):
        Screenplay.model_validate(_one({**base, "descriptor": "Driver"}))


def _one(member: dict) -> dict:
    return {
        "title": "t",
        "duration_s": 10,
        "cast": [member],
        "script": {"meta": {"title": "t"}, "script": [{"scene_id": 1, "events": []}]},
    }


# ── 1. a descriptor, then the proper name ─────────────────────────────────────────────────────────────
def test_the_driver_is_reported_by_his_descriptor_then_named_under_the_same_id(play, responder):
    first = plot(responder, 1, None)
    driver = by_name(first)["Driver"]
    assert driver.id == "char_003" and driver.aliases == [] and driver.name_evidence is None
    sal_look = look(play, "Sal Moreno")
    known = [profile("char_003", "Driver", sal_look)]

    second = plot(responder, 2, known)
    assert by_name(second)["Driver"].matched_from == "char_003" and second.name_updates == []

    third = plot(responder, 3, known)
    sal = next(c for c in third.characters if c.id == "char_003")
    line = '"Sal Moreno. Thirty years driving this coast." (00:17)'
    assert (sal.name, sal.matched_from, sal.match_confidence) == ("Sal Moreno", "char_003", "high")
    assert sal.aliases[0] == "Driver" and sal.name_evidence == line
    assert [(u.unknown_id, u.name, u.evidence) for u in third.name_updates] == [
        ("char_003", "Sal Moreno", line)
    ]

    # once the memory renamed him (descriptor kept as an alias), he is recognised by name, with no news
    renamed = [profile("char_003", "Sal Moreno", sal_look, aliases=["Driver"])]
    fourth = plot(responder, 4, renamed)
    sal = by_name(fourth)["Sal Moreno"]
    assert sal.matched_from == "char_003" and sal.name_evidence is None and fourth.name_updates == []


# ── 2. name forms, one per segment ────────────────────────────────────────────────────────────────────
def test_name_forms_are_reported_one_per_segment_and_recognised_by_any_heard(play, responder):
    osei_look = look(play, "Katherine Osei")
    first = by_name(plot(responder, 1, None))["Dr. Osei"]
    assert first.id == "char_004" and first.aliases == []
    assert first.name_evidence == '"Delivery for Dr. Osei?" (00:31)'

    # recognised by the form she was called before, though the memory's look is not hers any more
    known = [profile("char_004", "Dr. Osei", "a doctor")]
    kate = next(c for c in plot(responder, 3, known).characters if c.id == "char_004")
    assert (kate.name, kate.aliases, kate.matched_from) == ("Kate", ["Dr. Osei"], "char_004")
    assert kate.match_reason == "same name as the known character: Kate"
    assert kate.name_evidence == '"Kate, pack up what you can carry." (00:08)'
    assert kate.new_info.aliases == []  # "Dr. Osei" is the profile's name already

    known = [profile("char_004", "Dr. Osei", osei_look, aliases=["Kate"])]
    answer = plot(responder, 4, known)
    full = next(c for c in answer.characters if c.id == "char_004")
    assert (full.name, full.aliases) == ("Katherine Osei", ["Dr. Osei", "Kate"])
    assert full.name_evidence == '"Katherine Osei? You delivered my Tom, twenty years ago!" (00:32)'
    assert answer.name_updates == []  # a better form of a proper name is not a name update

    known = [profile("char_004", "Katherine Osei", osei_look, aliases=["Dr. Osei", "Kate"])]
    again = next(c for c in plot(responder, 5, known).characters if c.id == "char_004")
    assert again.name == "Katherine Osei" and again.name_evidence is None


def test_before_any_form_is_said_she_is_unnamed():
    data = json.loads(IDENTITY_SCREENPLAY.read_text(encoding="utf-8"))
    osei = next(c for c in data["cast"] if c["name"] == "Katherine Osei")
    osei["name_forms"][0]["said_at"] = "00:48"  # she is on screen at 00:35, called Dr. Osei at 00:48
    for event in data["script"]["script"][1]["events"]:
        if event["timestamp"] == "00:31":
            event["dialogue"] = "Delivery for the doctor?"
        if event["timestamp"] == "00:48":
            event["dialogue"] = "I'm Dr. Osei. Names for the evacuation list?"
    play = Screenplay.model_validate(data)
    member = play.member("Katherine Osei")
    early, late = Window(play, 28, 40), Window(play, 28, 56)
    assert not early.named(member) and early.reported_name(member) is None and late.named(member)
    assert [(i.id, i.name) for i in plot_identities(early, None) if i.member is member] == [
        ("unknown_001", "Unnamed")
    ]
    osei = next(i for i in plot_identities(late, None) if i.member is member)
    assert (osei.id, osei.name, osei.name_evidence) == (
        "char_002",
        "Dr. Osei",
        '"I\'m Dr. Osei. Names for the evacuation list?" (00:20)',
    )


# ── 3. the group and the guard singled out ────────────────────────────────────────────────────────────
def test_the_group_keeps_its_label_and_the_guard_is_named_later(play, responder):
    guards = by_name(plot(responder, 1, None))["the dock guards"]
    assert guards.id == "char_001" and "The dock guards will show you." in guards.name_evidence
    known = [
        profile("char_001", "the dock guards", "dock guards seen at the gate"),  # look changed: by name
        profile("char_003", "Driver", look(play, "Sal Moreno")),
    ]
    second = plot(responder, 2, known)
    chars = by_name(second)
    assert chars["the dock guards"].matched_from == "char_001"
    ivo = next(c for c in second.characters if c.id.startswith("unknown_"))
    assert ivo.name == "Unnamed" and ivo.appearance == look(play, "Ivo Brandt")

    known += [profile(ivo.id, None, ivo.appearance)]
    fourth = plot(responder, 4, known)
    assert [(u.unknown_id, u.name) for u in fourth.name_updates] == [
        ("unknown_007", "Ivo Brandt"),
        ("char_003", "Sal Moreno"),  # the Driver, named in segment 3, still a descriptor in this memory
    ]
    assert ivo.id == "unknown_007"  # after Lena, Rita and Tom Berg, numbered after char_003
    assert by_name(fourth)["Ivo Brandt"].name_evidence == '"Brandt. Ivo Brandt." (00:16)'


def test_a_group_is_never_proposed_as_the_same_as_an_individual(play, responder):
    ivo_look, guards_look = look(play, "Ivo Brandt"), look(play, "the dock guards")
    # a confused memory: the group's record once took the singled-out guard's look into its history
    known = [
        profile("char_001", "the dock guards", guards_look, appearance_history=[ivo_look]),
        profile("unknown_005", None, ivo_look),
        profile("char_006", "Driver", look(play, "Sal Moreno")),
    ]
    answer = plot(responder, 4, known)
    chars = {c.id: c for c in answer.characters}
    assert chars["unknown_005"].name == "Ivo Brandt" and chars["char_001"].name == "the dock guards"
    assert answer.same_as == []
    # and an individual's record with the group's look in its history is not the group's
    known[1] = profile("unknown_005", None, ivo_look, appearance_history=[guards_look])
    answer = plot(responder, 4, known)
    assert answer.same_as == [] and {"char_001", "unknown_005"} <= {c.id for c in answer.characters}


# ── 4. costume change with no name spoken, then same_as ────────────────────────────────────────────────
def test_costume_change_unspoken_then_same_as_in_a_later_window(play, responder):
    peacoat, storm_coat = look(play, "Ana Moreno"), look(play, "Ana Moreno", 120)
    known = [profile("char_002", "Ana Moreno", peacoat, aliases=["Ana"])]
    third = plot(responder, 3, known)
    ana = next(c for c in third.characters if c.appearance == storm_coat)
    assert ana.name == "Unnamed" and ana.id.startswith("unknown_") and ana.matched_from is None
    assert third.same_as == []

    known.append(profile(ana.id, None, storm_coat))
    fourth = plot(responder, 4, known)
    ana = by_name(fourth)["Ana Moreno"]
    assert (ana.id, ana.matched_from, ana.match_confidence) == ("char_002", "char_002", "high")
    assert ana.new_info.appearance == storm_coat
    assert [(s.id, s.same_as, s.confidence) for s in fourth.same_as] == [(known[1]["id"], "char_002", "high")]
    assert fourth.same_as[0].evidence == "same face and build as char_002, now in orange storm coat, hood up"
    assert known[1]["id"] not in {c.id for c in fourth.characters}


def test_same_as_by_looks_alone_keeps_the_earlier_unnamed_record_and_names_it(play, responder):
    peacoat, storm_coat = look(play, "Ana Moreno"), look(play, "Ana Moreno", 120)
    known = [profile("unknown_002", None, peacoat), profile("unknown_009", None, storm_coat)]
    answer = plot(responder, 4, known)
    ana = by_name(answer)["Ana Moreno"]
    assert ana.id == "unknown_002" and ana.match_reason.startswith("same face and build as before")
    assert [(s.id, s.same_as) for s in answer.same_as] == [("unknown_009", "unknown_002")]
    assert [(u.unknown_id, u.name) for u in answer.name_updates] == [("unknown_002", "Ana Moreno")]
    assert ana.name_evidence == '"Right behind you, Ana." (00:24)'


# ── mirrors that must stay apart, over the whole film ─────────────────────────────────────────────────
def test_the_whole_film_chained_keeps_mirrors_apart(chain):
    answers = [answer for answer, _ in chain]
    proposals = [(i, s.id, s.same_as) for i, a in enumerate(answers, 1) for s in a.same_as]
    assert proposals == [(4, "unknown_011", "char_002")]  # only Ana's two records, in segment 4
    final = chain[-1][1].records
    names = {r["name"]: r["id"] for r in final.values()}
    assert len(names) == 11 and len(final) == 11, names  # one record per cast member
    assert names["Tom Hale"] != names["Tom Berg"] and names["June Hale"] != names["Rita Berg"]
    assert names["Lena Petrov"] != names["Mira Petrov"] and names["Ana Moreno"] != names["Sal Moreno"]
    assert final[names["June Hale"]]["aliases"] == final[names["Rita Berg"]]["aliases"][:1] == ["Mom"]
    seg2 = by_name(answers[1])
    assert seg2["Tom Berg"].matched_from is None and seg2["Rita Berg"].matched_from is None
    assert by_name(answers[2])["Mira Petrov"].matched_from is None
    seg5 = answers[4]
    assert len({c.id for c in seg5.characters}) == len(seg5.characters) == 7
    assert all(c.matched_from == c.id for c in seg5.characters)
    seg6 = by_name(answers[5])
    assert seg6["Sal Moreno"].id == "char_003" and seg6["Ana Moreno"].id == "char_002"


def test_mirrors_are_never_matched_even_when_only_the_other_is_known(play, responder):
    known = [
        profile("char_005", "Tom Hale", look(play, "Tom Hale"), aliases=["Tom"]),
        profile("char_006", "June Hale", look(play, "June Hale"), aliases=["Mom"]),
        profile("char_007", "Lena Petrov", look(play, "Lena Petrov"), aliases=["Lena"]),
        profile("char_008", "Ana Moreno", look(play, "Ana Moreno"), aliases=["Ana"]),
    ]
    second = by_name(plot(responder, 2, known))  # Tom Berg and Rita: new, however "Tom"/"Mom" they are
    assert second["Tom Berg"].matched_from is None and second["Rita Berg"].matched_from is None
    assert second["Lena Petrov"].matched_from == "char_007"
    third = plot(responder, 3, known)
    assert by_name(third)["Mira Petrov"].matched_from is None and third.same_as == []
    fourth = plot(responder, 4, [*known[:3], profile("char_009", "Sal Moreno", "x", aliases=["Mr. Moreno"])])
    assert by_name(fourth)["Sal Moreno"].matched_from == "char_009"


# ── scripts find each member under the profile the memory keeps ───────────────────────────────────────
def test_script_ids_follow_the_memory(play, responder, chain):
    truth = {}
    for index, (_, memory) in enumerate(chain, 1):
        start, end = SEGMENTS[index - 1]
        window = Window(play, start, end)
        profiles = Profiles(memory.profiles(), play)
        ids = {m.name: script_id(window, m, profiles) for m in window.members}
        for name, code in ids.items():
            assert truth.setdefault(name, code) == code, (index, name, code)  # one id per person, throughout
    assert len(set(truth.values())) == len(play.cast)
    assert truth["Sal Moreno"] == "char_003" and truth["Katherine Osei"] == "char_004"

    # before any memory is kept: the name a model would use
    script = Script.model_validate(responder.answer(Stage.SCRIPT, ["x"], Clip(*SEGMENTS[0])).body)
    names = {e.character for e in script.events()} - {ENVIRONMENT}
    assert names == {"the dock guards", "Ana Moreno", "Driver", "Dr. Osei", "Tom Hale", "June Hale"}


def test_the_answers_travel_through_the_real_prompts(play, responder):
    known = [profile("char_003", "Driver", look(play, "Sal Moreno"))]
    prompt = render(
        "plot_next", segment_index=3, duration="00:56", character_context=known, previous_summary="Before."
    ).text
    body = responder.answer(Stage.PLOT_NEXT, [prompt], Clip(*SEGMENTS[2], 3)).body
    answer = NextSegmentPlot.model_validate(body)
    assert [u.unknown_id for u in answer.name_updates] == ["char_003"] and "same_as" in body
