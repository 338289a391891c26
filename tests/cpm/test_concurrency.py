"""The CPM under real concurrency: separate OS processes (spawned) writing one database, SQLite and PostgreSQL.

- 8 processes, 8 scopes: every process applies the same 4-segment story to its own video at the same time
  (a barrier before every segment makes the writes overlap). Afterwards each scope holds exactly what its
  process applied: nothing lost, nothing leaked across scopes (the same names in 8 scopes never merge), codes
  unique and contiguous.
- 2 processes, 1 scope: both apply segments that introduce, match, name and rename characters, with clashing
  proposed codes and names, and finally both apply an answer to the SAME segment. Whatever order the lock
  gives them, afterwards: no duplicate code, no name shared by two canonical characters, every observation of
  both processes present, every code ever issued resolving through `merged_into` to a canonical record.
Serialisation comes from the CPM's per-scope lock (SQLite: BEGIN IMMEDIATE + busy timeout; PostgreSQL:
pg_advisory_xact_lock per scope); these tests prove it with real processes and check the rows with SQL.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select

from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.models import (
    Character,
    CharacterAlias,
    CharacterObservation,
    Merge,
    NameEvent,
    Relationship,
    Segment,
    SegmentPlot,
)
from profiles_db.normalize import code_number
from tests.support.db import make_video, plot_answer

BARRIER_TIMEOUT_S = 120  # a crashed peer breaks the barrier instead of hanging the test
JOIN_TIMEOUT_S = 300
RACE_ROUNDS = 12  # fresh race scopes per run: more chances for the two writers to interleave


# -- the child processes -------------------------------------------------------------------------------
Step = tuple[str, int, dict[str, Any]]  # (scope, segment id, plot_answer kwargs)


def _writer(url: str, tag: str, steps: list[Step], barrier: Any, results: Any) -> None:
    """Entry point of a spawned process: like a plot worker, read the context then apply, step by step."""
    try:
        db = Database(url, auto_upgrade=False)
        cpm = CharacterProfileManager(db)
        out = []
        for scope, segment_id, answer in steps:
            barrier.wait(BARRIER_TIMEOUT_S)
            context = cpm.context(scope, segment_id)
            # the two processes interleave segments of one scope on purpose: the lock is under test
            report = cpm.apply(scope, segment_id, plot_answer(**answer), enforce_order=False)
            out.append(
                {"context": [p.id for p in context.characters], "report": report.model_dump(mode="json")}
            )
        db.dispose()
        results.put((tag, out, None))
    except BaseException:
        barrier.abort()
        results.put((tag, None, traceback.format_exc()))


def _run_processes(url: str, plans: dict[str, list[Step]]) -> dict[str, list[dict]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(url, tag, steps, barrier, results), name=f"cpm-{tag}")
        for tag, steps in plans.items()
    ]
    for p in procs:
        p.start()
    got: dict[str, list[dict]] = {}
    errors: dict[str, str] = {}
    try:
        for _ in procs:
            tag, out, error = results.get(timeout=JOIN_TIMEOUT_S)
            if error:
                errors[tag] = error
            else:
                got[tag] = out
    finally:
        for p in procs:
            p.join(timeout=JOIN_TIMEOUT_S)
            if p.is_alive():
                p.kill()
    assert not errors, "\n".join(f"{tag}:\n{err}" for tag, err in errors.items())
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return got


# -- SQL views of the result ---------------------------------------------------------------------------
def _scope_rows(db: Database, scope: str) -> dict[str, Any]:
    with db.sessions() as s:
        chars = {c.id: c for c in s.scalars(select(Character).where(Character.scope == scope))}
        ids = list(chars) or [-1]
        return {
            "chars": chars,
            "aliases": s.scalars(select(CharacterAlias).where(CharacterAlias.character_id.in_(ids))).all(),
            "obs": s.scalars(
                select(CharacterObservation).where(CharacterObservation.character_id.in_(ids))
            ).all(),
            "rels": s.scalars(select(Relationship).where(Relationship.scope == scope)).all(),
            "events": s.scalars(select(NameEvent).where(NameEvent.character_id.in_(ids))).all(),
            "merges": s.scalars(select(Merge).where(Merge.from_id.in_(ids))).all(),
            "plots": s.scalars(select(SegmentPlot).where(SegmentPlot.scope == scope)).all(),
            "dup_codes": s.execute(
                select(Character.code, func.count())
                .where(Character.scope == scope)
                .group_by(Character.code)
                .having(func.count() > 1)
            ).all(),
            "seg_idx": {sid: idx for sid, idx in s.execute(select(Segment.id, Segment.idx))},
        }


def _canonical(chars: dict[int, Character], cid: int) -> int:
    seen: set[int] = set()
    while chars[cid].merged_into is not None:
        assert cid not in seen, f"merge cycle through {chars[cid].code}"
        seen.add(cid)
        cid = chars[cid].merged_into
    return cid


def _check_invariants(cpm: CharacterProfileManager, db: Database, scope: str) -> dict[str, Any]:
    """What must hold whatever the interleaving was; returns the rows for further checks."""
    rows = _scope_rows(db, scope)
    chars = rows["chars"]
    assert rows["dup_codes"] == [], f"duplicate codes in {scope}: {rows['dup_codes']}"
    canon = {cid: _canonical(chars, cid) for cid in chars}
    roots = {cid for cid in chars if chars[cid].merged_into is None}
    # every code ever issued belongs to one record only and resolves to that record's canonical profile
    issued: dict[str, int] = {c.code: cid for cid, c in chars.items()}
    for e in rows["events"]:
        if e.new_code and e.new_code != e.old_code:
            assert issued.setdefault(e.old_code, e.character_id) == e.character_id, f"{e.old_code} reused"
    for code, cid in issued.items():
        profile = cpm.resolve(scope, code)
        assert profile is not None and profile.id == chars[canon[cid]].code, (code, profile)
    assert sorted(p.id for p in cpm.profiles(scope)) == sorted(chars[r].code for r in roots)
    for r in roots:  # a named canonical character carries a char_ code, an unnamed one unknown_
        assert chars[r].code.startswith("char_" if chars[r].status == "named" else "unknown_")
    # rows hang on canonical records; no normalised name/alias is owned by two canonical characters
    assert all(a.character_id in roots for a in rows["aliases"])
    assert all(o.character_id in roots for o in rows["obs"])
    assert all(r.a_id in roots and r.b_id in roots and r.a_id != r.b_id for r in rows["rels"])
    owners: dict[str, set[int]] = defaultdict(set)
    for a in rows["aliases"]:
        owners[a.normalized].add(a.character_id)
    shared = {norm: ids for norm, ids in owners.items() if len(ids) > 1}
    assert not shared, f"names on two canonical characters of {scope}: {shared}"
    rows["canon"], rows["issued"] = canon, issued
    return rows


def _observed(rows: dict[str, Any]) -> Counter:
    """(segment idx, code the model used, appearance) of every stored observation."""
    return Counter((rows["seg_idx"][o.segment_id], o.source_code, o.appearance or "") for o in rows["obs"])


def _entries(steps: list[Step], seg_idx: dict[int, int]) -> Counter:
    """The same triples for every character entry a process applied (each one must be an observation)."""
    return Counter(
        (seg_idx[seg], c["id"], c.get("appearance", ""))
        for _, seg, answer in steps
        for c in answer["characters"]
    )


# -- a) 8 processes, 8 scopes ----------------------------------------------------------------------------
def _c(cid: str, name: str = "Unnamed", appearance: str = "", **extra: Any) -> dict[str, Any]:
    return {"id": cid, "name": name, "appearance": appearance, **extra}


def _rel(a: str, b: str, label: str) -> dict[str, str]:
    return {"char1_id": a, "char2_id": b, "relationship": label, "evidence": f"{a} and {b}: {label}"}


def story(tag: str) -> list[dict[str, Any]]:
    """Four segments: new characters, matches (by id and by matched_from), lazy naming, a same-name merge."""
    return [
        {
            "index": 1,
            "characters": [_c("char_001", "Anna", "red coat"), _c("unknown_001", appearance="grey beard")],
            "relationships": [_rel("char_001", "unknown_001", "strangers")],
            "narrative": f"{tag}: Anna meets a bearded man.",
        },
        {
            "index": 2,
            "characters": [
                _c("char_001", "Anna", "blue coat", matched_from="char_001"),
                _c("unknown_007", appearance="grey beard, hat", matched_from="unknown_001"),
                _c("char_002", "Carl", "tall", aliases=["Carlo"]),
            ],
            "relationships": [_rel("char_001", "char_002", "siblings")],
            "narrative": f"{tag}: Anna's brother Carl arrives.",
        },
        {
            "index": 3,
            "characters": [
                _c("unknown_001", appearance="grey beard"),
                _c("unknown_002", appearance="thin man"),
            ],
            "name_updates": [{"unknown_id": "unknown_001", "name": "Bob", "evidence": "Carl calls him Bob"}],
            "relationships": [_rel("unknown_001", "char_002", "rivals")],
            "narrative": f"{tag}: Bob and Carl quarrel; a thin man watches.",
        },
        {
            "index": 4,
            "characters": [
                _c("char_001", "Anna", "blue coat", aliases=["Annie"]),
                _c("unknown_002", "Carl.", "thin man, cap"),
                _c("char_003", "Bob", "grey beard"),
            ],
            "relationships": [_rel("char_003", "char_001", "friends")],
            "narrative": f"{tag}: the thin man turns out to be Carl in disguise.",
        },
    ]


def test_eight_processes_on_eight_scopes_lose_nothing(database):
    plans: dict[str, list[Step]] = {}
    for k in range(8):
        scope = f"conc-video-{k}"
        segs = make_video(database, scope=scope, segments=4)
        plans[scope] = [(scope, seg, answer) for seg, answer in zip(segs, story(scope), strict=True)]
    results = _run_processes(database.url, plans)

    cpm = CharacterProfileManager(database)
    for scope, steps in plans.items():
        rows = _check_invariants(cpm, database, scope)
        chars, canon = rows["chars"], rows["canon"]
        code = {cid: chars[canon[cid]].code for cid in chars}
        # each process saw its own memory grow, and nothing of the other scopes
        contexts = [r["context"] for r in results[scope]]
        assert contexts[0] == [] and set(contexts[1]) == {"char_001", "unknown_001"}
        assert set(contexts[3]) == {"char_001", "char_002", "char_003", "unknown_002"}
        # codes: unique, contiguous per kind, exactly the ones the story issues
        assert sorted(rows["issued"]) == ["char_001", "char_002", "char_003", "unknown_001", "unknown_002"]
        for prefix in ("char", "unknown"):
            numbers = sorted(n for p, n in map(code_number, rows["issued"]) if p == prefix)
            assert numbers == list(range(1, len(numbers) + 1))
        # nothing lost: every entry is an observation on the right character, every alias, relationship, plot
        assert _observed(rows) == _entries(steps, rows["seg_idx"])
        owner = {(rows["seg_idx"][o.segment_id], o.source_code): code[o.character_id] for o in rows["obs"]}
        assert owner[(2, "unknown_007")] == owner[(3, "unknown_001")] == "char_003"
        assert owner[(3, "unknown_002")] == owner[(4, "unknown_002")] == "char_002"
        names = defaultdict(set)
        for a in rows["aliases"]:
            names[code[a.character_id]].add(a.normalized)
        assert names == {"char_001": {"anna", "annie"}, "char_002": {"carl", "carlo"}, "char_003": {"bob"}}
        assert {(code[r.a_id], code[r.b_id], r.label) for r in rows["rels"]} == {
            ("char_001", "char_003", "strangers"),
            ("char_001", "char_002", "siblings"),
            ("char_003", "char_002", "rivals"),
            ("char_003", "char_001", "friends"),
        }
        assert sorted(p.narrative for p in rows["plots"]) == sorted(s[2]["narrative"] for s in steps)
        assert [(chars[m.from_id].code, chars[m.into_id].code) for m in rows["merges"]] == [
            ("unknown_002", "char_002")
        ]
        assert {e.old_code for e in rows["events"]} == {"unknown_001", "unknown_002"}


# -- b) 2 processes, 1 scope -----------------------------------------------------------------------------
def race_plans(database: Database, scope: str) -> dict[str, list[Step]]:
    """Two writers telling overlapping stories of one scope; proposed codes and names clash on purpose."""
    a_segs = make_video(database, scope=scope, video_id=f"{scope}-a", segments=3)
    b_segs = make_video(database, scope=scope, video_id=f"{scope}-b", segments=3)
    shared = make_video(database, scope=scope, video_id=f"{scope}-shared", segments=1)[0]
    a = [
        {
            "index": 1,
            "characters": [_c("char_001", "Anna", "red coat"), _c("unknown_001", appearance="grey beard")],
            "relationships": [_rel("char_001", "unknown_001", "neighbours")],
            "narrative": "A1",
        },
        {
            "index": 2,
            "characters": [
                _c("unknown_001", appearance="grey beard, hat", matched_from="unknown_001"),
                _c("char_002", "Dora", "yellow scarf", aliases=["Dee"]),
            ],
            "name_updates": [{"unknown_id": "unknown_001", "name": "Bob", "evidence": "Dora greets Bob"}],
            "relationships": [_rel("char_001", "char_002", "friends")],
            "narrative": "A2",
        },
        {
            "index": 3,
            "characters": [
                _c("char_001", "Anna", "red coat, wet", aliases=["Annie"]),
                _c("char_002", "Dora"),
            ],
            "relationships": [_rel("char_002", "unknown_001", "colleagues")],
            "narrative": "A3",
        },
    ]
    b = [
        {
            "index": 1,
            "characters": [
                _c("char_005", "ANNA", "green dress"),
                _c("unknown_001", appearance="woman in red"),
            ],
            "relationships": [_rel("char_005", "unknown_001", "sisters")],
            "narrative": "B1",
        },
        {
            "index": 2,
            "characters": [_c("char_006", "Bob", "hat"), _c("unknown_002", appearance="small child")],
            "relationships": [_rel("char_006", "char_005", "colleagues")],
            "narrative": "B2",
        },
        {
            "index": 3,
            "characters": [_c("unknown_002", appearance="small child, crying")],
            "name_updates": [{"unknown_id": "unknown_002", "name": "Dee", "evidence": "called Dee"}],
            "relationships": [_rel("unknown_002", "char_005", "mother and child")],
            "narrative": "B3",
        },
    ]
    # last step: both answer for the SAME segment (two workers, one segment: the second adds what is new)
    a_shared = {
        "index": 7,
        "characters": [
            _c("char_001", "Anna", "red coat, party"),
            _c("unknown_003", appearance="tall waiter"),
        ],
        "narrative": "shared, as A saw it",
    }
    b_shared = {
        "index": 7,
        "characters": [
            _c("char_001", "Anna", "red coat, dancing"),
            _c("unknown_003", appearance="waiter, tray"),
        ],
        "narrative": "shared, as B saw it",
    }
    return {
        "a": [*((scope, s, x) for s, x in zip(a_segs, a, strict=True)), (scope, shared, a_shared)],
        "b": [*((scope, s, x) for s, x in zip(b_segs, b, strict=True)), (scope, shared, b_shared)],
    }


def test_two_processes_racing_on_one_scope_keep_the_invariants(database):
    plans: dict[str, list[Step]] = {"a": [], "b": []}
    scopes = [f"conc-race-{r}" for r in range(RACE_ROUNDS)]
    for scope in scopes:  # the rounds run one after another, each a fresh scope raced by both processes
        for tag, steps in race_plans(database, scope).items():
            plans[tag].extend(steps)
    _run_processes(database.url, plans)

    cpm = CharacterProfileManager(database)
    for scope in scopes:
        rows = _check_invariants(cpm, database, scope)
        chars, canon = rows["chars"], rows["canon"]
        steps = [step for tag in plans for step in plans[tag] if step[0] == scope]
        # every observation of both processes is there (the shared segment's four entries too)
        assert _observed(rows) == _entries(steps, rows["seg_idx"])
        # every name either process applied survives, each on exactly one canonical character
        owner_of = {a.normalized: a.character_id for a in rows["aliases"]}
        assert {"anna", "annie", "bob", "dora", "dee"} <= set(owner_of)
        assert owner_of["dora"] == owner_of["dee"]  # Dee is Dora's alias: B's naming joined them
        named = [c for cid, c in chars.items() if canon[cid] == cid and c.status == "named"]
        assert sorted(c.name.casefold() for c in named) == ["anna", "bob", "dora"] or sorted(
            c.name.casefold() for c in named
        ) == ["anna", "bob", "dee"]
        # relationships: one row per (pair, label) after merges, none lost that still joins two people
        labels = Counter(r.label for r in rows["rels"])
        assert {"neighbours", "friends", "colleagues", "mother and child"} <= set(labels)
        # the shared segment: one plot row (the later answer's narrative), both answers' observations
        shared_plot = [p for p in rows["plots"] if p.narrative.startswith("shared")]
        assert len(shared_plot) == 1
        assert len(rows["plots"]) == 7
        for m in rows["merges"]:  # every merge went from a later record into a canonical-chain member
            assert canon[m.from_id] == canon[m.into_id]
