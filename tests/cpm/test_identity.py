"""Identity patterns real models produce on real films, through `CharacterProfileManager.apply`, on SQLite
and PostgreSQL: descriptors first, name forms one at a time, kinship words, groups, re-introductions under a
new code matched later, and the mirrors that must stay apart (same surname, same given name, twins)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from profiles_db.cpm import CharacterProfileManager
from profiles_db.models import Character, IdentityProposal, Merge, NameEvent
from tests.support.db import make_video, plot_answer

SCOPE = "identity"


@pytest.fixture
def cpm(database):
    return CharacterProfileManager(database)


@pytest.fixture
def segs(database):
    return make_video(database, scope=SCOPE, segments=6)


def apply(cpm, segs, k, characters=(), **extra):
    return cpm.apply(SCOPE, segs[k - 1], plot_answer(k, characters, **extra))


def events(database, code=None):
    with database.sessions() as s:
        rows = s.execute(
            select(NameEvent.old_name, NameEvent.new_name, NameEvent.evidence, Character.code)
            .join(Character, Character.id == NameEvent.character_id)
            .order_by(NameEvent.id)
        ).all()
    return [(r.old_name, r.new_name, r.evidence) for r in rows if code is None or r.code == code]


def proposals(database):
    with database.sessions() as s:
        rows = s.execute(
            select(IdentityProposal, Character.code)
            .join(Character, Character.id == IdentityProposal.from_id)
            .order_by(IdentityProposal.id)
        ).all()
        into = {c.id: c.code for c in s.scalars(select(Character))}
        return [(code, into[p.into_id], p.source, p.confidence, p.status, p.note) for p, code in rows]


def canonical_names(cpm):
    return [p.name for p in cpm.profiles(SCOPE)]


# -- a descriptor first, the proper name later ----------------------------------------------------------
def test_a_descriptor_name_is_provisional_and_the_proper_name_replaces_it(cpm, segs, database):
    report = apply(cpm, segs, 1, [{"id": "char_001", "name": "Driver", "appearance": "man in a flat cap"}])
    assert report.created == ["char_001"]
    driver = cpm.resolve(SCOPE, "char_001")
    assert (driver.name, driver.status) == ("Driver", "provisional")
    apply(cpm, segs, 2, [{"id": "char_001", "name": "Driver"}])  # still only a descriptor: nothing changes
    assert events(database) == []
    report = apply(
        cpm,
        segs,
        3,
        [
            {
                "id": "char_001",
                "name": "Sal Moreno",
                "match_reason": "same flat cap and build",
                "name_evidence": '"Sal Moreno, you are late again." (00:12)',
            }
        ],
    )
    sal = cpm.resolve(SCOPE, "char_001")
    assert (sal.id, sal.name, sal.status, sal.aliases) == ("char_001", "Sal Moreno", "named", ["Driver"])
    assert report.named == ["char_001"]
    assert events(database) == [("Driver", "Sal Moreno", '"Sal Moreno, you are late again." (00:12)')]


def test_an_unknown_called_by_a_descriptor_gets_a_char_code_when_named(cpm, segs, database):
    apply(cpm, segs, 1, [{"id": "unknown_001", "name": "the Man in Cap"}])
    man = cpm.resolve(SCOPE, "unknown_001")
    assert (man.id, man.name, man.status) == ("unknown_001", "the Man in Cap", "provisional")
    report = apply(
        cpm,
        segs,
        2,
        [{"id": "unknown_001", "name": "the Man in Cap"}],
        name_updates=[
            {"unknown_id": "unknown_001", "name": "Elias Crane", "evidence": '"Elias Crane!" (00:07)'}
        ],
    )
    assert report.code_map["unknown_001"] == report.named[0] == "char_001"
    elias = cpm.resolve(SCOPE, "unknown_001")
    assert (elias.name, elias.aliases, elias.former_codes) == (
        "Elias Crane",
        ["the Man in Cap"],
        ["unknown_001"],
    )
    assert events(database) == [("the Man in Cap", "Elias Crane", '"Elias Crane!" (00:07)')]


# -- name forms one at a time ---------------------------------------------------------------------------
def test_the_name_improves_to_the_most_complete_form_with_every_form_kept(cpm, segs, database):
    apply(
        cpm,
        segs,
        1,
        [{"id": "char_001", "name": "Dr. Osei", "name_evidence": '"Thank you, Dr. Osei." (00:20)'}],
    )
    apply(cpm, segs, 2, [{"id": "char_001", "name": "Kate", "name_evidence": '"Kate, sit down." (00:40)'}])
    osei = cpm.resolve(SCOPE, "char_001")
    assert (osei.name, osei.aliases) == (
        "Dr. Osei",
        ["Kate"],
    )  # a given name alone is less than title + family
    apply(
        cpm,
        segs,
        3,
        [{"id": "char_001", "name": "Katherine Osei", "name_evidence": '"Katherine Osei, MD." (00:05)'}],
    )
    apply(cpm, segs, 4, [{"id": "char_001", "name": "Kate"}])  # a lesser form again changes nothing
    osei = cpm.resolve(SCOPE, "char_001")
    assert (osei.name, sorted(osei.aliases)) == ("Katherine Osei", ["Dr. Osei", "Kate"])
    assert events(database) == [("Dr. Osei", "Katherine Osei", '"Katherine Osei, MD." (00:05)')]


def test_a_contradicting_full_name_on_a_known_id_is_a_mix_up_not_a_rename(cpm, segs):
    apply(cpm, segs, 1, [{"id": "char_001", "name": "Tom Hale"}])
    report = apply(cpm, segs, 2, [{"id": "char_001", "name": "Tom Berg"}])
    tom = cpm.resolve(SCOPE, "char_001")
    assert (tom.name, tom.aliases) == ("Tom Hale", [])
    assert any("contradicts its name" in w for w in report.warnings)


# -- the naming line is the evidence ----------------------------------------------------------------------
def test_name_event_evidence_is_the_naming_line_not_the_match_reason(cpm, segs, database):
    apply(cpm, segs, 1, [{"id": "unknown_001", "name": "Unnamed", "appearance": "tall, grey beard"}])
    apply(
        cpm,
        segs,
        2,
        [
            {
                "id": "unknown_001",
                "name": "Tomas",
                "matched_from": "unknown_001",
                "match_confidence": "high",
                "match_reason": "same build, face and clothes as before",
            }
        ],
        name_updates=[
            {"unknown_id": "unknown_001", "name": "Tomas", "evidence": '"Tomas, the radio!" (00:31)'}
        ],
    )
    assert events(database) == [(None, "Tomas", '"Tomas, the radio!" (00:31)')]


# -- relative terms and groups -----------------------------------------------------------------------------
def test_two_mothers_both_called_mom_stay_two_people(cpm, segs, database):
    apply(cpm, segs, 1, [{"id": "unknown_001", "name": "Mom", "appearance": "woman in a green shawl"}])
    report = apply(
        cpm,
        segs,
        2,
        [{"id": "unknown_002", "name": "Mom", "appearance": "woman with a red umbrella"}],
        name_updates=[{"unknown_id": "unknown_002", "name": "Mom"}],
    )
    assert report.merged == [] and canonical_names(cpm) == ["Mom", "Mom"]
    # named later, each keeps "Mom" as an alias, and they are still two
    apply(
        cpm,
        segs,
        3,
        [
            {"id": "unknown_001", "name": "Ruth Hale", "aliases": ["Mom"]},
            {"id": "unknown_002", "name": "Ines Berg", "aliases": ["Mom", "Mother"]},
        ],
    )
    profiles = {p.name: p for p in cpm.profiles(SCOPE)}
    assert set(profiles) == {"Ruth Hale", "Ines Berg"}
    assert "Mom" in profiles["Ruth Hale"].aliases and "Mom" in profiles["Ines Berg"].aliases
    with database.sessions() as s:
        assert s.scalar(select(Merge.id)) is None


def test_a_group_is_its_own_record_and_never_merges_with_an_individual(cpm, segs, database):
    apply(
        cpm,
        segs,
        1,
        [
            {"id": "unknown_001", "name": "the dock guards", "appearance": "four men in navy coats"},
            {"id": "unknown_002", "name": "Guard", "appearance": "one of the dock guards, scar on the chin"},
        ],
    )
    report = apply(
        cpm,
        segs,
        2,
        [{"id": "unknown_002", "name": "Petrov", "aliases": ["Guard"]}],
        same_as=[
            {"id": "unknown_002", "same_as": "unknown_001", "confidence": "high", "evidence": "same coats"}
        ],
    )
    assert sorted(canonical_names(cpm)) == ["Petrov", "the dock guards"]
    assert report.proposals == [("unknown_001", "char_001", "rejected")]  # the named record is kept
    (row,) = proposals(database)
    assert row[4] == "rejected" and "group" in row[5]


# -- re-introduction under a new code, matched later ---------------------------------------------------------
def _nora_reintroduced(cpm, segs):
    apply(cpm, segs, 1, [{"id": "char_001", "name": "Nora", "appearance": "navy jacket, red scarf"}])
    apply(cpm, segs, 2, [{"id": "unknown_002", "name": "Unnamed", "appearance": "yellow raincoat, hood up"}])


def test_a_confident_same_as_merges_the_reintroduced_record_reversibly(cpm, segs, database):
    _nora_reintroduced(cpm, segs)
    report = apply(
        cpm,
        segs,
        3,
        [{"id": "char_001", "name": "Nora", "appearance": "yellow raincoat, hood up"}],
        same_as=[
            {
                "id": "unknown_002",
                "same_as": "char_001",
                "confidence": "high",
                "evidence": "same face and build; the raincoat is new",
            }
        ],
    )
    assert [(f, i) for f, i, _ in report.merged] == [("unknown_002", "char_001")]
    assert "same face and build" in report.merged[0][2]
    assert report.proposals == [("unknown_002", "char_001", "merged")]
    nora = cpm.resolve(SCOPE, "unknown_002")
    assert nora.id == "char_001" and nora.former_codes == ["unknown_002"]
    assert [p.id for p in cpm.profiles(SCOPE)] == ["char_001"]
    # the segment-2 code now resolves to Nora for every reader (records resolve through this at export)
    assert cpm.resolver(SCOPE)("unknown_002").name == "Nora"
    # reversible like every merge, and not redone
    cpm.unmerge(SCOPE, "unknown_002")
    assert sorted(p.id for p in cpm.profiles(SCOPE)) == ["char_001", "unknown_002"]
    apply(cpm, segs, 4, [{"id": "char_001"}], same_as=[{"id": "unknown_002", "same_as": "char_001"}])
    assert sorted(p.id for p in cpm.profiles(SCOPE)) == ["char_001", "unknown_002"]
    assert proposals(database)[-1][4] == "rejected"


def test_matched_from_on_another_known_code_is_a_merge_proposal(cpm, segs):
    _nora_reintroduced(cpm, segs)
    report = apply(
        cpm,
        segs,
        3,
        [
            {
                "id": "unknown_002",
                "matched_from": "char_001",
                "match_confidence": "medium",
                "match_reason": "her voice and her walk",
            }
        ],
    )
    assert report.proposals == [("unknown_002", "char_001", "merged")]
    assert report.code_map["unknown_002"] == "char_001"


def test_a_low_confidence_proposal_waits_for_review(cpm, segs, database):
    _nora_reintroduced(cpm, segs)
    weak = {
        "id": "unknown_002",
        "matched_from": "char_001",
        "match_confidence": "low",
        "match_reason": "maybe",
    }
    hint = {"id": "unknown_002", "same_as": "char_001", "confidence": "low", "evidence": "similar height"}
    report = apply(cpm, segs, 3, [weak], same_as=[hint])
    assert report.merged == [] and report.code_map["unknown_002"] == "unknown_002"
    assert sorted(p.id for p in cpm.profiles(SCOPE)) == ["char_001", "unknown_002"]
    rows = proposals(database)
    assert {(r[0], r[1], r[4]) for r in rows} == {("unknown_002", "char_001", "pending")}
    assert {r[2] for r in rows} == {"same_as", "matched_from"}
    assert any("v2s profiles merge unknown_002 char_001" in w for w in report.warnings)
    apply(cpm, segs, 3, [weak], same_as=[hint])  # applying the same answer again records nothing twice
    assert len(proposals(database)) == len(rows)


def test_identical_appearance_alone_never_merges(cpm, segs):
    look = "woman, short black hair, grey wool coat"
    apply(cpm, segs, 1, [{"id": "unknown_001", "appearance": look}])
    apply(
        cpm, segs, 2, [{"id": "unknown_002", "appearance": look}, {"id": "unknown_003", "appearance": look}]
    )
    assert len(cpm.profiles(SCOPE)) == 3


# -- the mirrors: proper names that must stay apart -------------------------------------------------------------
def test_same_surname_stays_apart_and_a_title_form_merges_only_when_unambiguous(cpm, segs):
    apply(cpm, segs, 1, [{"id": "char_001", "name": "Sal Moreno", "aliases": ["Mr. Moreno"]}])
    report = apply(cpm, segs, 2, [{"id": "char_002", "name": "Mr. Moreno"}])
    assert [(f, i) for f, i, _ in report.merged] == [("char_002", "char_001")]  # only Sal has that surname
    apply(cpm, segs, 3, [{"id": "char_003", "name": "Ana Moreno"}])
    report = apply(cpm, segs, 4, [{"id": "char_004", "name": "Mr. Moreno"}])
    assert report.merged == []  # Ana is a Moreno too: the title form no longer singles out Sal
    assert any("family name 'moreno' too" in w for w in report.warnings)
    names = sorted(canonical_names(cpm))
    assert names == ["Ana Moreno", "Mr. Moreno", "Sal Moreno"]


def test_same_given_name_stays_apart_and_the_short_form_is_not_shared(cpm, segs):
    apply(cpm, segs, 1, [{"id": "char_001", "name": "Tom Hale", "aliases": ["Tom"]}])
    report = apply(cpm, segs, 2, [{"id": "char_002", "name": "Tom Berg", "aliases": ["Tom"]}])
    assert report.merged == []
    assert any("alias 'Tom' of char_002 is char_001's too" in w for w in report.warnings)
    hale, berg = cpm.profiles(SCOPE)
    assert (hale.name, hale.aliases, berg.name, berg.aliases) == ("Tom Hale", ["Tom"], "Tom Berg", [])
    # a new record called just "Tom" could be either: it is not merged into one of them
    report = apply(cpm, segs, 3, [{"id": "char_003", "name": "Tom"}])
    assert report.merged == [] and len(cpm.profiles(SCOPE)) == 3


def test_twins_with_near_identical_looks_stay_apart_even_on_a_proposal(cpm, segs, database):
    apply(
        cpm,
        segs,
        1,
        [
            {"id": "char_001", "name": "Lena Voss", "appearance": "young woman, red braid, green parka"},
            {
                "id": "char_002",
                "name": "Mira Voss",
                "appearance": "young woman, red braid, green parka, scarf",
            },
        ],
    )
    report = apply(
        cpm,
        segs,
        2,
        [{"id": "char_001"}, {"id": "char_002"}],
        same_as=[{"id": "char_002", "same_as": "char_001", "confidence": "high", "evidence": "same face"}],
    )
    assert report.merged == [] and report.proposals == [("char_002", "char_001", "pending")]
    assert sorted(canonical_names(cpm)) == ["Lena Voss", "Mira Voss"]
    (row,) = proposals(database)
    assert "different given names" in row[5]


# -- what a reviewer sees --------------------------------------------------------------------------------------
def test_profiles_show_lists_the_name_history_and_the_pending_proposals(cpm, segs, database):
    from typer.testing import CliRunner

    from jobs.cli import app

    apply(cpm, segs, 1, [{"id": "char_001", "name": "Driver"}, {"id": "unknown_001", "appearance": "tall"}])
    apply(
        cpm,
        segs,
        2,
        [
            {
                "id": "char_001",
                "name": "Sal Moreno",
                "name_evidence": '"Sal Moreno, you drove unknown_001 home?"',
            }
        ],
        same_as=[
            {"id": "unknown_001", "same_as": "char_001", "confidence": "low", "evidence": "similar build"}
        ],
    )
    url = database.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    shown = runner.invoke(
        app, ["profiles", "show", "char_001", "--database-url", url, "--scope", SCOPE, "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["name"] == "Sal Moreno"
    assert [(h["old_name"], h["new_name"], h["segment"]) for h in data["name_history"]] == [
        ("Driver", "Sal Moreno", 2)
    ]
    assert data["proposals"] == [
        {
            "segment": 2,
            "from_code": "unknown_001",
            "into_code": "char_001",
            "source": "same_as",
            "confidence": "low",
            "status": "pending",
            "evidence": "similar build",
            "note": "low confidence: waiting for a reviewer",
        }
    ]
    table = runner.invoke(
        app, ["profiles", "show", "char_001", "--database-url", url, "--scope", SCOPE], terminal_width=200
    )
    assert table.exit_code == 0, table.output
    assert "name history" in table.stdout and "identity proposals (1 pending)" in table.stdout
    assert "v2s profiles merge unknown_001 char_001" in table.stdout


def test_stored_notes_read_with_the_current_codes_after_a_rename(cpm, segs, database):
    from typer.testing import CliRunner

    from jobs.cli import app

    apply(
        cpm,
        segs,
        1,
        [{"id": "char_001", "name": "Anna"}, {"id": "unknown_001", "appearance": "grey beard"}],
        relationships=[
            {
                "char1_id": "char_001",
                "char2_id": "unknown_001",
                "relationship": "strangers",
                "evidence": "unknown_001 hands Anna the key",
            }
        ],
    )
    apply(cpm, segs, 2, name_updates=[{"unknown_id": "unknown_001", "name": "Tomas", "evidence": '"Tomas!"'}])
    url = database.engine.url.render_as_string(hide_password=False)
    shown = CliRunner().invoke(
        app, ["profiles", "relationships", "--database-url", url, "--scope", SCOPE, "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    (rel,) = json.loads(shown.stdout)
    assert rel["evidence"] == "char_002 hands Anna the key" and rel["b_name"] == "Tomas"
