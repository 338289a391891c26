"""Property: any sequence of answers, renames, merges and unmerges keeps the CPM's invariants.

Each Hypothesis example works in a fresh scope of the test's database (scopes are isolated by design), so
the examples share one database and stay cheap. Invariants checked after every step:
- one canonical record per code, and `resolve` of every code ever issued ends at a canonical record (no cycles);
- no proper name or alias is shared by two canonical characters of a scope, except where a human undid a merge
  between them or the names say they are two people (different family or given names, or a short form such as
  "Tom" that a third character's name fits too); relative terms and descriptors ("Mom", "Driver") may be
  shared; a named canonical character has a char_ code and a proper name, an unknown_ one is provisional, a
  provisional one has no proper name;
- aliases, observations and relationships point at canonical records;
- no observation is ever lost; right after an unmerge, everything its merge recorded as moved is back.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Sequence

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from evaluation.names import analyse_name
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.models import (
    Character,
    CharacterAlias,
    CharacterObservation,
    Merge,
    NameEvent,
    Relationship,
)
from profiles_db.normalize import normalize_name, parse_code
from tests.support.db import dialect, make_video, plot_answer

IDS = ["char_001", "char_002", "char_003", "unknown_001", "unknown_002", "unknown_003", "Ghost"]
NAMES = [
    "Unnamed",
    "Anna",
    "ÁNNA",
    "Bob",
    "bob.",
    "Carl",
    "Dora",
    "",
    "Tom Hale",
    "Tom Berg",
    "Mom",
    "Driver",
]
ALIASES = ["Annie", "Bobby", "the Doc", "ánnie", "Carl", "Tom", "Mr. Hale", "Mom", "the guards"]
CONFIDENCE = ["high", "medium", "low"]
SEGMENTS = 6

character = st.fixed_dictionaries(
    {
        "id": st.sampled_from(IDS),
        "name": st.sampled_from(NAMES),
        "aliases": st.lists(st.sampled_from(ALIASES), max_size=2),
        "appearance": st.sampled_from(["", "red coat", "blue suit", "grey beard"]),
    },
    optional={"matched_from": st.sampled_from(IDS), "match_confidence": st.sampled_from(CONFIDENCE)},
)
apply_op = st.tuples(
    st.just("apply"),
    st.lists(character, max_size=4),
    st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(NAMES)), max_size=2),
    st.lists(
        st.tuples(st.sampled_from(IDS), st.sampled_from(IDS), st.sampled_from(["friends", "Rivals"])),
        max_size=2,
    ),
    st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(IDS), st.sampled_from(CONFIDENCE)), max_size=2),
)
rename_op = st.tuples(st.just("rename"), st.sampled_from(IDS), st.sampled_from(NAMES))
merge_op = st.tuples(st.just("merge"), st.sampled_from(IDS), st.sampled_from(IDS))
unmerge_op = st.tuples(st.just("unmerge"), st.sampled_from(IDS))
operations = st.lists(st.one_of(apply_op, apply_op, rename_op, merge_op, unmerge_op), min_size=1, max_size=7)


def _c(cid: str, name: str, aliases: Sequence[str] = (), **extra: str) -> dict:
    return {"id": cid, "name": name, "aliases": list(aliases), "appearance": "", **extra}


# Histories a soak run (V2S_CPM_EXAMPLES=2000) once failed on, kept as fixed examples.
REGRESSIONS = [
    # unmerge gave back aliases that a third character shares: the same-name rule must apply again
    [
        (
            "apply",
            [
                _c("char_001", "Unnamed", ["Annie", "Carl"]),
                _c("unknown_001", "Dora", ["Annie"]),
                _c("unknown_002", "Carl"),
            ],
            [],
            [],
        ),
        ("unmerge", "char_003"),
        ("apply", [_c("char_001", "Unnamed"), _c("unknown_001", "Unnamed", ["Annie", "Carl"])], [], []),
        ("unmerge", "unknown_001"),
    ],
    # a rename after a merge took a name whose alias row the unmerge then handed back
    [
        (
            "apply",
            [_c("char_003", "Anna"), _c("char_001", "Anna"), _c("char_002", "Bob", matched_from="char_001")],
            [],
            [],
        ),
        ("rename", "char_001", "Bob"),
        ("unmerge", "char_001"),
    ],
    # unmerges in the opposite order of the merges (chain B → A, then A → unknown)
    [
        ("apply", [_c("char_001", "Unnamed")], [], []),
        (
            "apply",
            [_c("char_001", "Anna", ["Annie"]), _c("char_002", "ÁNNA"), _c("char_003", "Anna", ["Annie"])],
            [],
            [],
        ),
        ("merge", "char_001", "unknown_001"),
        ("unmerge", "char_001"),
        ("unmerge", "char_002"),
    ],
    # unmerging the middle of a chain B → C → A after B itself: B's observations stay with B
    [
        (
            "apply",
            [_c("char_001", "Bob"), _c("char_003", "Bob", ["Annie"]), _c("char_002", "Anna", ["Annie"])],
            [],
            [],
        ),
        ("unmerge", "char_002"),
        ("unmerge", "char_003"),
    ],
]


def run_step(cpm: CharacterProfileManager, scope: str, segs: list[int], step: int, op: tuple) -> None:
    kind = op[0]
    try:
        if kind == "apply":
            _, chars, updates, rels, *same = op
            answer = plot_answer(
                step + 1,
                chars,
                name_updates=[{"unknown_id": u, "name": n} for u, n in updates],
                relationships=[{"char1_id": a, "char2_id": b, "relationship": label} for a, b, label in rels],
                same_as=[{"id": a, "same_as": b, "confidence": c} for a, b, c in (same[0] if same else [])],
            )
            cpm.apply(scope, segs[step % len(segs)], answer)  # wraps around: re-applies with a new answer
        elif kind == "rename":
            cpm.rename(scope, op[1], op[2])
        elif kind == "merge":
            cpm.merge(scope, op[1], op[2], "property test")
        else:
            cpm.unmerge(scope, op[1])
    except ValueError:  # manual corrections refuse unknown codes, self-merges, unusable names
        pass


def check_invariants(cpm: CharacterProfileManager, db: Database, scope: str, seen_obs: set[int]) -> None:
    with db.sessions() as s:
        chars = {c.id: c for c in s.scalars(select(Character).where(Character.scope == scope))}
        events = s.scalars(select(NameEvent).where(NameEvent.character_id.in_(list(chars) or [-1]))).all()
        aliases = s.scalars(
            select(CharacterAlias).where(CharacterAlias.character_id.in_(list(chars) or [-1]))
        ).all()
        obs = s.scalars(
            select(CharacterObservation).where(CharacterObservation.character_id.in_(list(chars) or [-1]))
        ).all()
        rels = s.scalars(select(Relationship).where(Relationship.scope == scope)).all()
        merges = s.scalars(select(Merge).where(Merge.from_id.in_(list(chars) or [-1]))).all()

    def canonical(cid: int) -> int:
        seen = set()
        while chars[cid].merged_into is not None:
            assert cid not in seen, "merge cycle"
            seen.add(cid)
            cid = chars[cid].merged_into
        return cid

    canon = {cid: canonical(cid) for cid in chars}
    roots = {cid for cid in chars if chars[cid].merged_into is None}
    # one canonical record per code, and the profiles are exactly the canonical records
    assert sorted(p.id for p in cpm.profiles(scope)) == sorted(chars[r].code for r in roots)
    for r in roots:
        c = chars[r]
        proper = bool(c.name) and _proper(c.name)
        assert (c.status == "named") == proper, (c.code, c.status, c.name)
        assert c.status == "provisional" or c.code.startswith("char_"), (c.code, c.status)
        assert not c.code.startswith("unknown_") or c.status == "provisional", (c.code, c.status)
        if c.name:
            assert any(a.character_id == r and a.normalized == normalize_name(c.name) for a in aliases)
    # every code ever issued resolves to the canonical record of the record that carried it
    issued = {c.code: cid for cid, c in chars.items()}
    for e in events:
        if e.new_code and e.new_code != e.old_code:
            issued.setdefault(e.old_code, e.character_id)
    for code, cid in issued.items():
        profile = cpm.resolve(scope, code)
        assert profile is not None and profile.id == chars[canon[cid]].code, (code, profile)
    # rows point at canonical records; no normalised alias on two canonical records unless a merge was undone
    assert all(a.character_id in roots for a in aliases)
    assert all(o.character_id in roots for o in obs)
    assert all(r.a_id in roots and r.b_id in roots and r.a_id != r.b_id for r in rels)
    undone = {(m.from_id, m.into_id) for m in merges if m.undone_at is not None}
    owners: dict[str, set[int]] = defaultdict(set)
    forms: dict[int, list] = defaultdict(list)  # canonical → its proper names/aliases, analysed
    for a in aliases:
        if _proper(a.alias):
            owners[a.normalized].add(a.character_id)
            forms[a.character_id].append(_info(a.alias))
    for norm, ids in owners.items():
        for x in ids:
            for y in ids - {x}:
                tx = {i for i in chars if canon[i] == x}
                ty = {i for i in chars if canon[i] == y}
                undone_between = any((f in tx and i in ty) or (f in ty and i in tx) for f, i in undone)
                assert undone_between or _two_people(forms, x, y, norm), (norm, x, y)
    # no observation is ever lost
    ids_now = {o.id for o in obs}
    assert seen_obs <= ids_now
    seen_obs |= ids_now


def _info(name: str):
    return analyse_name(name.title() if name.islower() else name)


def _proper(name: str) -> bool:
    return _info(name).cls == "proper"


def _two_people(forms: dict[int, list], x: int, y: int, norm: str) -> bool:
    """The names themselves say x and y are different people, or the shared form fits a third one too."""
    sx, sy = ({f.surname for f in forms[c] if f.surname} for c in (x, y))
    if sx and sy and not sx & sy:
        return True
    gx, gy = ({f.words[0].casefold() for f in forms[c] if f.completeness == 3} for c in (x, y))
    if gx and gy and not gx & gy:
        return True
    shared = next(f for f in forms[x] if normalize_name(f.name) == norm)
    if shared.completeness == 3:
        return False
    for z, zforms in forms.items():
        if z in (x, y):
            continue
        if shared.title and shared.surname in {f.surname for f in zforms}:
            return True
        if not shared.title and any(shared.words[0].casefold() in map(str.casefold, f.words) for f in zforms):
            return True
    return False


def active_merge(db: Database, scope: str, code: str) -> tuple[int, int] | None:
    """(record, its merge to be undone) for the record carrying `code`, if it is merged."""
    with db.sessions() as s:
        rid = s.scalar(
            select(Character.id).where(Character.scope == scope, Character.code == parse_code(code))
        )
        if rid is None:
            rid = s.scalar(
                select(NameEvent.character_id)
                .join(Character, Character.id == NameEvent.character_id)
                .where(Character.scope == scope, NameEvent.old_code == parse_code(code))
            )
        merge = s.scalar(
            select(Merge.id).where(Merge.from_id == rid, Merge.undone_at.is_(None)).order_by(Merge.id.desc())
        )
        return (rid, merge) if rid is not None and merge is not None else None


def check_restored(db: Database, scope: str, record: int, merge_id: int) -> None:
    """After unmerge: everything the merge moved belongs to the record again (or to whoever it joined since)."""
    with db.sessions() as s:
        chars = {c.id: c for c in s.scalars(select(Character).where(Character.scope == scope))}
        merge = s.get(Merge, merge_id)
        assert merge.undone_at is not None

        def canon(cid: int) -> int:
            while chars[cid].merged_into is not None:
                cid = chars[cid].merged_into
            return cid

        owners = {
            o.id: canon(o.character_id)
            for o in s.scalars(
                select(CharacterObservation).where(
                    CharacterObservation.id.in_(merge.moved["observations"] or [-1])
                )
            )
        }
        assert set(owners) == set(merge.moved["observations"])
        others = s.scalars(select(Merge).where(Merge.from_id.in_(list(chars)), Merge.id != merge_id)).all()
        for oid, owner in owners.items():
            # back with the record, unless an unmerge since gave it to the record it first belonged to
            assert owner == canon(record) or any(
                m.undone_at and oid in m.moved["observations"] and canon(m.from_id) == owner for m in others
            ), (oid, owner)
        norms = {
            a.normalized
            for a in s.scalars(select(CharacterAlias).where(CharacterAlias.character_id.in_(list(chars))))
            if canon(a.character_id) == canon(record)
        }
        assert {d["normalized"] for d in merge.moved["aliases_dropped"]} <= norms


def test_random_histories_keep_the_invariants(database):
    cpm = CharacterProfileManager(database)
    examples = 40 if dialect(database) == "sqlite" else 15
    examples = int(os.environ.get("V2S_CPM_EXAMPLES", examples))  # soak locally with e.g. 2000

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=operations)
    @example(ops=REGRESSIONS[0])
    @example(ops=REGRESSIONS[1])
    @example(ops=REGRESSIONS[2])
    @example(ops=REGRESSIONS[3])
    def history(ops):
        scope = f"prop-{uuid.uuid4().hex[:10]}"
        segs = make_video(database, scope=scope, segments=SEGMENTS)
        seen_obs: set[int] = set()
        for step, op in enumerate(ops):
            undo = active_merge(database, scope, op[1]) if op[0] == "unmerge" else None
            run_step(cpm, scope, segs, step, op)
            check_invariants(cpm, database, scope, seen_obs)
            if undo:
                check_restored(database, scope, *undo)

    history()
