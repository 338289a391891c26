"""The Character Profile Manager (DESIGN.md §5): memory of who is who across the segments of a scope.

Workers call `context()` before plot reasoning of a segment and `apply()` with the parsed answer after it;
users correct mistakes with `rename()`, `merge()` and `unmerge()`. Every write runs in ONE transaction
holding the scope's lock (SQLite: BEGIN IMMEDIATE from db.py; PostgreSQL: an advisory lock on the scope),
so concurrent writers of one scope queue and writers of different scopes do not wait on each other (on
PostgreSQL). The unique (scope, code) constraint is the backstop: a violation retries the whole apply.

Decisions (docs/sql.md repeats them for SQL users):
- Identity of an answer entry, first match wins: the code this entry's id was mapped to when the same
  segment was applied before (re-apply), a known `matched_from`, a known `id`; else a new character. "Known"
  means any code ever issued in the scope, resolved through renames and merges. An unknown `matched_from`
  makes the entry new, with a warning.
- Codes: a new character keeps the model's proposed id when it is a well-formed code of the right kind
  (char_ for named, unknown_ for unnamed) never issued in the scope; otherwise the next free number is issued
  (never reusing a code, nor one another entry of the same answer proposed). code_map records the mapping.
- Idempotency: applying a segment again is additive and deduplicated: the same answer changes nothing
  (same characters, aliases, observations, relationships; the segment_plots row is rewritten identically);
  a different answer for the same segment adds what is new and replaces the segment_plots row.
- Order within a scope: video episode (NULL first), video creation time, video id, segment idx.
- Merges keep the named record, else the earlier one; a merge undone by hand is never redone automatically.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from annotator.schemas import CharacterContext, CharacterProfile, PlotReasoning, is_unnamed
from annotator.schemas.plot import NameUpdate, PlotCharacter, replace_codes
from profiles_db.cpm_state import ScopeState, label_key
from profiles_db.db import Database
from profiles_db.identity import IdentityRules, better_form, forms_conflict, is_proper, name_info, same_norm
from profiles_db.models import (
    Character,
    CharacterObservation,
    IdentityProposal,
    NameEvent,
    Relationship,
    Segment,
    SegmentPlot,
    StageRun,
)
from profiles_db.normalize import (
    MAX_LABEL,
    MAX_TEXT,
    check_name,
    check_text,
    clean,
    normalize_name,
    parse_code,
    sanitize,
    short,
)

log = logging.getLogger(__name__)

RECENT_SEGMENTS = 3  # characters seen this many segments ago or less come first in a tight context
HISTORY_IN_CONTEXT = 5  # latest looks per character shown to the model
SUMMARY_CHARS = 800  # the stored "short summary" of a segment
_RETRIES = 3
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock (PostgreSQL)


class ChainOrderError(ValueError):
    """An apply out of the scope's memory order: an earlier segment is neither applied nor given up, or a
    later one was applied already. Applying it would reason over a memory with a hole in it."""


class ApplyReport(BaseModel):
    code_map: dict[str, str] = Field(default_factory=dict)  # every id used in the answer → canonical code
    created: list[str] = Field(default_factory=list)
    matched: list[str] = Field(default_factory=list)
    named: list[str] = Field(default_factory=list)
    merged: list[tuple[str, str, str]] = Field(default_factory=list)  # (from_code, into_code, reason)
    proposals: list[tuple[str, str, str]] = Field(default_factory=list)  # (from_code, into_code, status)
    warnings: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class _Proposal:
    source: str  # same_as | matched_from
    raw_from: str
    raw_into: str
    confidence: str
    evidence: str
    from_record: int | None = (
        None  # the record the entry's own id named, when the entry followed matched_from
    )


class CharacterProfileManager:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads -----------------------------------------------------------------------------------
    def context(self, scope: str, segment_id: int, *, token_budget: int = 4000) -> CharacterContext:
        """What the plot prompt of `segment_id` sees: profiles as of before it, the previous summary, in budget."""
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            position = _position(st, segment_id)
            profiles, centrality = _profiles(s, st, before=position)
            summary = _previous_summary(s, st, position)
        ordered = sorted(
            profiles.values(),
            key=lambda p: (
                0 if position - (p.last_seen_segment or 0) <= RECENT_SEGMENTS else 1,
                -centrality[p.id],
                -(p.last_seen_segment or 0),
                p.id,
            ),
        )
        return _fit(
            CharacterContext(scope=scope, segment_index=position, previous_summary=summary),
            ordered,
            token_budget,
        )

    def profiles(self, scope: str) -> list[CharacterProfile]:
        """Canonical characters of the scope, in order of first appearance."""
        with self.db.sessions() as s:
            profiles, _ = _profiles(s, ScopeState(s, scope))
        return sorted(profiles.values(), key=lambda p: (p.first_seen_segment or 1 << 30, p.id))

    def resolve(self, scope: str, code: str) -> CharacterProfile | None:
        """The canonical profile behind any code ever issued in the scope (renamed or merged ones too)."""
        if parse_code(code) is None:
            return None
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            cid = st.lookup(code)
            if cid is None:
                return None
            profiles, _ = _profiles(s, st, only={cid})
        return profiles.get(st.chars[cid].code)

    def resolver(self, scope: str) -> Callable[[str], CharacterProfile | None]:
        """`resolve` for many look-ups at once (e.g. every event of a script): one read, then a snapshot."""
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            profiles, _ = _profiles(s, st)
        canonical = {code: st.chars[st.canonical(cid)].code for code, cid in st.codes.items()}

        def lookup(code: str) -> CharacterProfile | None:
            parsed = parse_code(code)
            return profiles.get(canonical.get(parsed, "")) if parsed else None

        return lookup

    # -- writes ----------------------------------------------------------------------------------
    def apply(
        self, scope: str, segment_id: int, answer: PlotReasoning, *, enforce_order: bool = True
    ) -> ApplyReport:
        """Fold one segment's plot-reasoning answer into the scope's memory, in one transaction.

        Refused (ChainOrderError) when it is out of the scope's order; `enforce_order=False` is for repairs by
        hand and for tests of the locking itself, never for the pipeline."""

        def run(s: Session, st: ScopeState) -> ApplyReport:
            if enforce_order:
                _check_chain_order(s, st, segment_id)
            return _Apply(s, st, segment_id, answer).run()

        report = self._write(scope, run)
        for warning in report.warnings:
            log.warning("cpm %s segment %s: %s", scope, segment_id, warning)
        return report

    def rename(
        self,
        scope: str,
        code: str,
        name: str,
        *,
        evidence: str = "manual rename",
        segment_id: int | None = None,
    ) -> CharacterProfile:
        """Give a character a (new) name by hand; an unnamed one is upgraded like a name update."""

        def run(s: Session, st: ScopeState) -> str:
            cid = _known(st, code)
            warnings: list[str] = []
            clean_name = check_name(name, f"rename of {code}", warnings)
            if clean_name is None:
                raise ValueError(warnings[0] if warnings else f"{name!r} is not a usable name")
            namer = _Namer(s, st, segment_id, warnings)
            namer.name(cid, clean_name, evidence, force=True)
            namer.rules.settle(segment_id, warnings, namer.hints)
            _log(scope, f"rename {code}", warnings)
            return st.chars[st.canonical(cid)].code

        return self._profile_after(scope, self._write(scope, run))

    def merge(
        self, scope: str, from_code: str, into_code: str, reason: str = "manual merge"
    ) -> CharacterProfile:
        """Fold one character into another by hand (recorded in merges, undone by `unmerge`)."""

        def run(s: Session, st: ScopeState) -> str:
            a, b = _known(st, from_code), _known(st, into_code)
            if a == b:
                raise ValueError(f"{from_code} and {into_code} are already the same character")
            warnings: list[str] = []
            st.merge(a, b, clean(reason) or "manual merge", None)
            IdentityRules(st).settle(None, warnings)  # the union may share a name with a third character
            _log(scope, f"merge {from_code}", warnings)
            return st.chars[st.canonical(b)].code

        return self._profile_after(scope, self._write(scope, run))

    def unmerge(self, scope: str, code: str) -> CharacterProfile:
        """Undo the last merge of the record that carries `code`, restoring what it moved.

        Returns the record's profile; should what it got back be the name of a third character, the usual
        same-name merge applies and the profile is that character's."""

        def run(s: Session, st: ScopeState) -> str:
            rid = st.record(code)
            if rid is None:
                raise ValueError(f"{code!r} is not a code of scope {scope!r}")
            warnings: list[str] = []
            st.unmerge(rid, warnings)
            record = st.chars[rid]
            if record.status == "named" and record.code.startswith("unknown_"):
                # it was named after the character it joined; on its own again it needs a char_ code
                old_code = st.recode(rid, st.allocate("char"))
                s.add(
                    NameEvent(
                        character_id=rid,
                        old_code=old_code,
                        new_code=record.code,
                        new_name=record.name or "",
                        evidence="named record made separate again by unmerge",
                    )
                )
            # what it had back may be the name or alias of a third character: the usual rule applies
            IdentityRules(st).settle(None, warnings)
            _log(scope, f"unmerge {code}", warnings)
            return st.chars[st.canonical(rid)].code

        return self._profile_after(scope, self._write(scope, run))

    # -- plumbing --------------------------------------------------------------------------------
    def _write(self, scope: str, fn: Callable[[Session, ScopeState], Any]) -> Any:
        for attempt in range(1, _RETRIES + 1):
            try:
                with self._locked(scope) as s:
                    return fn(s, ScopeState(s, scope))
            except (IntegrityError, DBAPIError) as exc:
                retry = isinstance(exc, IntegrityError) or _sqlstate(exc) in _RETRY_SQLSTATES
                if not retry or attempt == _RETRIES:
                    raise
                log.warning("cpm %s: write conflict (%s), retrying (%d)", scope, type(exc).__name__, attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def _locked(self, scope: str) -> Iterator[Session]:
        with self.db.transaction() as s:
            if s.get_bind().dialect.name == "postgresql":
                # Writers of one scope queue here; hashtext collisions only serialise two scopes, harmlessly.
                s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:scope))"), {"scope": scope})
            yield s

    def _profile_after(self, scope: str, code: str) -> CharacterProfile:
        profile = self.resolve(scope, code)
        assert profile is not None, code
        return profile


# -- apply -------------------------------------------------------------------------------------------
class _Namer:
    """Naming as an upgrade path: an unnamed record or one known only by a descriptor takes a proper name
    (and a char_ code), and a named one moves on to a more complete form of its name; every change is a name
    event with its evidence line, every earlier name stays an alias, and the old code keeps resolving."""

    def __init__(self, s: Session, st: ScopeState, segment_id: int | None, warnings: list[str]) -> None:
        self.s, self.st, self.segment_id, self.warnings = s, st, segment_id, warnings
        self.rules = IdentityRules(st)
        self.reserved: set[str] = set()
        self.named: list[int] = []
        self.merges: list[Any] = []
        self.hints: dict[int, str] = {}  # record → why its name changed, quoted in merge reasons

    def name(self, cid: int, name: str, evidence: str, *, force: bool = False) -> None:
        st, c, rules = self.st, self.st.chars[cid], self.rules
        if same_norm(c.name, name) and (force or c.status == "named" or not is_proper(name)):
            return  # already so named (a re-apply, or the model repeating itself)
        evidence = check_text(evidence, f"naming {c.code}", self.warnings) or ""
        if force:
            self._rename(cid, name, evidence)
            return
        norm = normalize_name(name)
        if not is_proper(name):  # a descriptor, relative term or group label is a name only for the nameless
            if c.name:
                self.learn_alias(cid, name)
            else:
                self._rename(cid, name, evidence)
            return
        owners = rules.owners(norm, exclude=cid)
        mergeable = [o for o in owners if rules.block(o, cid, norm) is None]
        if c.status != "named":  # provisional: an unknown_ code, or a record known by a descriptor
            earlier = [o for o in mergeable if st.chars[o].status == "named" and o < cid]
            if earlier:  # named after an earlier character: it IS that one (code kept, the merge redirects)
                into = earlier[0]
                self.hints[cid] = f"lazy naming: {c.code} is {name!r}"
                self._rename(cid, name, evidence, recode=False)
                reason = f"{self.hints[cid]}, the name of {st.chars[into].code}"
                self.merges.append(st.merge(cid, into, reason, self.segment_id))
                return
            # The earliest of its name: settle() later folds later same-named records into it.
            self._rename(cid, name, evidence)
            return
        if owners and not mergeable:
            self.warnings.append(
                f"{c.code} ({c.name!r}) reported as {name!r}, the name of {st.chars[owners[0]].code}, "
                f"who {rules.block(owners[0], cid, norm)}: ignored (possible id mix-up)"
            )
            return
        if better_form(c.name, name):
            self._rename(cid, name, evidence)
        elif c.name and forms_conflict(name_info(c.name), name_info(name)):
            self.warnings.append(
                f"{c.code} ({c.name!r}) reported as {name!r}, which contradicts its name: ignored "
                "(possible id mix-up)"
            )
        else:
            self.learn_alias(cid, name)

    def learn_alias(self, cid: int, alias: str) -> bool:
        """Add an alias, unless it is a proper form of someone this record cannot be (then it would be a
        false merge key): "Tom" said to Tom Berg while Tom Hale has it already."""
        st, norm = self.st, normalize_name(alias)
        if is_proper(alias):
            for other in self.rules.owners(norm, exclude=cid):
                why = self.rules.block(other, cid, norm)
                if why is not None:
                    self.warnings.append(
                        f"alias {alias!r} of {st.chars[cid].code} is {st.chars[other].code}'s too, but {why}; "
                        "not stored"
                    )
                    return False
        return st.add_alias(cid, alias, self.segment_id)

    def _rename(self, cid: int, name: str, evidence: str, *, recode: bool = True) -> None:
        st, c = self.st, self.st.chars[cid]
        old_code, old_name, was_named = c.code, c.name, c.status == "named"
        if old_name:
            st.add_alias(cid, old_name, self.segment_id)  # every name it was known by stays findable
        new_code = None
        proper = is_proper(name)
        if proper and recode and c.code.startswith("unknown_"):
            new_code = st.allocate("char", self.reserved)
            st.recode(cid, new_code)
        c.name, c.status = name, "named" if proper else "provisional"
        st.add_alias(cid, name, self.segment_id)
        self.s.add(self._event(cid, old_code, new_code, old_name, name, evidence))
        if proper and not was_named:
            self.named.append(cid)
            self.hints.setdefault(cid, f"lazy naming: {old_code} is {name!r}")
        elif proper:
            self.hints.setdefault(cid, f"{old_code} renamed {old_name!r} → {name!r}")

    def _event(self, cid, old_code, new_code, old_name, new_name, evidence) -> NameEvent:
        return NameEvent(
            character_id=cid,
            segment_id=self.segment_id,
            old_code=old_code,
            new_code=new_code,
            old_name=old_name,
            new_name=new_name,
            evidence=evidence,
        )


class _Apply:
    def __init__(self, s: Session, st: ScopeState, segment_id: int, answer: PlotReasoning) -> None:
        self.s, self.st, self.answer = s, st, answer
        self.segment = s.get(Segment, segment_id)
        self.position = _position(st, segment_id)
        self.warnings: list[str] = []
        self.ids: dict[str, int] = {}  # id as the model wrote it → character record
        self.created: list[int] = []
        self.matched: list[int] = []
        self.namer = _Namer(s, st, segment_id, self.warnings)
        self.touched: set[int] = set()
        self.proposals: list[_Proposal] = []  # identity proposals met in the entries (matched_from)
        self.decided: list[tuple[str, str, str]] = []  # (from_code, into_code, merged|pending|rejected)
        self.name_evidence = {  # id → name → the naming line a name update of this answer quotes
            (parse_code(u.unknown_id) or clean(u.unknown_id), normalize_name(u.name)): u.evidence
            for u in answer.name_updates
            if u.evidence
        }

    def run(self) -> ApplyReport:
        st, seg = self.st, self.segment
        st.repair_cycles(self.warnings)
        prior = self.s.get(SegmentPlot, seg.id)
        prior_map: dict[str, str] = dict(prior.code_map or {}) if prior else {}
        entries = self._fold_duplicates(self.answer.characters)
        self.namer.reserved = {c for c in (parse_code(e.id) for e in entries) if c}
        self.seen_obs = self._existing_observations()
        for entry in entries:
            self._entry(entry, prior_map)
        for update in self.answer.name_updates:
            self._name_update(update)
        # relationships attach to the records the answer named, BEFORE same-name merges, so that an
        # unmerge hands them back to the right record
        self._relationships()
        merges = [*self.namer.merges, *self._propose()]
        merges += self.namer.rules.settle(seg.id, self.warnings, self.namer.hints)
        code_map = self._code_map()
        self._store_plot(code_map, prior_map)
        self.s.flush()
        st.refresh_cache({st.canonical(i) for i in self.touched})

        def codes(ids: list[int]) -> list[str]:
            return list(dict.fromkeys(st.chars[st.canonical(i)].code for i in ids))

        return ApplyReport(
            code_map=code_map,
            created=[st.chars[i].code for i in dict.fromkeys(self.created) if st.canonical(i) == i],
            matched=codes(self.matched),
            named=codes(self.namer.named),
            merged=[(st.chars[m.from_id].code, st.chars[m.into_id].code, m.reason) for m in merges],
            proposals=self.decided,
            warnings=self.warnings,
        )

    # -- characters ------------------------------------------------------------------------------
    def _fold_duplicates(self, characters: list[PlotCharacter]) -> list[PlotCharacter]:
        """One entry per id: a model that lists a character twice gets its two descriptions unioned."""
        groups: dict[str, list[PlotCharacter]] = {}
        for entry in characters:
            groups.setdefault(parse_code(entry.id) or clean(entry.id).casefold(), []).append(entry)
        folded = []
        for group in groups.values():
            first = group[0]
            if len(group) > 1:
                self.warnings.append(
                    f"id {short(first.id)} listed {len(group)} times; entries folded into one"
                )
                data = first.model_dump()
                for other in group[1:]:
                    _union(data, other.model_dump())
                first = PlotCharacter.model_validate(data)
            folded.append(first)
        return folded

    def _entry(self, e: PlotCharacter, prior_map: dict[str, str]) -> None:
        st, what = self.st, f"character {short(e.id)}"
        name = check_name(e.name, what, self.warnings)
        target = st.lookup(prior_map[e.id]) if e.id in prior_map else None
        matched_from = clean(e.matched_from)
        if is_unnamed(matched_from) or matched_from.casefold() in {"null", "new"}:  # the model's "no match"
            matched_from = ""
        if target is None and matched_from:
            known = st.lookup(matched_from)
            own = st.lookup(e.id)
            confidence = e.match_confidence or "medium"
            if known is None:
                fallback = (
                    f"matched by its id {st.chars[own].code} instead"
                    if own is not None
                    else "treated as a new character"
                )
                self.warnings.append(
                    f"{what}: matched_from {short(matched_from)} is not a known code; {fallback}"
                )
            elif confidence == "low":
                # too weak to act on: the entry stays what its own id says, the proposal waits for review
                self.proposals.append(
                    _Proposal("matched_from", e.id, matched_from, "low", clean(e.match_reason))
                )
            else:
                target = known
                if own not in (None, known):  # its id is another known record: the model says they are one
                    self.proposals.append(
                        _Proposal("matched_from", e.id, matched_from, confidence, clean(e.match_reason), own)
                    )
        if target is None:
            target = st.lookup(e.id)
        if target is None:
            target = self._create(e, name)
        else:
            self.matched.append(target)
            self._update_known(target, e, name)
        self.ids.setdefault(e.id, target)
        if matched_from and st.lookup(matched_from) is not None:
            self.ids.setdefault(matched_from, st.lookup(matched_from))
        target = st.canonical(target)
        self.touched.add(target)
        aliases = [*e.aliases, *(e.new_info.aliases if e.new_info else [])]
        for raw in aliases:
            alias = check_name(raw, f"{what} alias", self.warnings)
            if alias:
                self.namer.learn_alias(target, alias)
        self._observe(target, e)

    def _create(self, e: PlotCharacter, name: str | None) -> int:
        st = self.st
        proposed = parse_code(e.id)
        # a proper name earns a char_ code and no name an unknown_ one; a record known only by a descriptor,
        # a relative term or a group label keeps the kind the model chose (it is provisional either way)
        if name is None:
            prefix = "unknown"
        elif is_proper(name):
            prefix = "char"
        else:
            prefix = proposed.split("_")[0] if proposed else "unknown"
        if proposed and proposed.startswith(prefix + "_") and proposed not in st.used:
            code = proposed
        else:
            code = st.allocate(prefix, self.namer.reserved)
            why = (
                "is not a char_NNN/unknown_NNN code"
                if proposed is None
                else f"is the wrong kind for {'a named' if name else 'an unnamed'} character"
                if not proposed.startswith(prefix + "_")
                else "was issued before"
            )
            self.warnings.append(f"new character id {short(e.id)} {why}; issued {code}")
        role = check_text(e.role_type, f"{code} role_type", self.warnings, MAX_LABEL) or ""
        character = Character(
            scope=st.scope,
            code=code,
            name=name,
            status="named" if name and is_proper(name) else "provisional",
            first_seen_segment_id=self.segment.id,
            last_seen_segment_id=self.segment.id,
            role_type=role,
            appearance=check_text(e.appearance, f"{code} appearance", []) or "",
            voice=check_text(e.voice, f"{code} voice", []) or "",
            personality=check_text(e.personality, f"{code} personality", []) or "",
        )
        st.add_character(character)
        if name:
            st.add_alias(character.id, name, self.segment.id)
        self.created.append(character.id)
        return character.id

    def _update_known(self, cid: int, e: PlotCharacter, name: str | None) -> None:
        c = self.st.chars[cid]
        if e.role_type.strip():
            c.role_type = check_text(e.role_type, f"{c.code} role_type", self.warnings, MAX_LABEL) or ""
        if name:
            self.namer.name(cid, name, self._naming_line(e, name))

    def _naming_line(self, e: PlotCharacter, name: str) -> str:
        """The evidence of a name: the line the entry quotes, else the one a name update of this answer
        quotes for it; never the match reason (that says why it is the same person, not what it is called)."""
        if clean(e.name_evidence):
            return clean(e.name_evidence)
        norm = normalize_name(name)
        for raw in (e.id, e.matched_from):
            line = self.name_evidence.get((parse_code(raw) or clean(raw), norm)) if raw else None
            if line:
                return line
        return f"reported as {name!r} in segment {self.position}"

    def _observe(self, cid: int, e: PlotCharacter) -> None:
        """One observation per character and segment answer: the history that is never overwritten."""
        info, code = e.new_info, self.st.chars[cid].code
        start = self.segment.start_s
        stamps = [
            {"t": a.timestamp, "abs": round(start + a.timestamp, 3), "action": clean(a.action)}
            for a in e.appearances_in_segment
        ]
        if e.first_appear is not None and all(s["t"] != e.first_appear for s in stamps):
            stamps.insert(
                0,
                {"t": e.first_appear, "abs": round(start + e.first_appear, 3), "action": "first appearance"},
            )
        fields = {
            key: check_text(
                (getattr(info, key, None) if info else None) or getattr(e, key),
                f"{code} {key}",
                self.warnings,
            )
            for key in ("appearance", "voice", "personality")
        }
        source = parse_code(e.id) or clean(e.id)[:32]
        key = (cid, source, fields["appearance"], fields["voice"], fields["personality"], _dumps(stamps))
        if key in self.seen_obs:
            return
        self.seen_obs.add(key)
        self.s.add(
            CharacterObservation(
                character_id=cid, segment_id=self.segment.id, source_code=source, timestamps=stamps, **fields
            )
        )

    def _existing_observations(self) -> set[tuple]:
        """Observations this segment already has (a re-apply must not duplicate them)."""
        rows = self.s.scalars(
            select(CharacterObservation).where(
                CharacterObservation.segment_id == self.segment.id,
                CharacterObservation.character_id.in_(list(self.st.chars) or [-1]),
            )
        )
        return {
            (
                self.st.canonical(o.character_id),
                o.source_code,
                o.appearance,
                o.voice,
                o.personality,
                _dumps(o.timestamps or []),
            )
            for o in rows
        }

    def _name_update(self, update: NameUpdate) -> None:
        what = f"name update for {short(update.unknown_id)}"
        target = self.ids.get(update.unknown_id) or self.st.lookup(update.unknown_id)
        if target is None:
            self.warnings.append(f"{what} ignored: not a known code")
            return
        name = check_name(update.name, what, self.warnings)
        if name is None:
            if is_unnamed(update.name):
                self.warnings.append(f"{what} ignored: it gives no name")
            return
        target = self.st.canonical(target)
        self.ids.setdefault(update.unknown_id, target)
        self.touched.add(target)
        evidence = update.evidence or f"name update in segment {self.position}"
        self.namer.name(target, name, evidence)

    # -- identity proposals ---------------------------------------------------------------------------
    def _propose(self) -> list[Any]:
        """Act on the model's same-person proposals: a confident one merges (the later record into the
        earlier, recorded and reversible), a weak one or one the names contradict waits for review, and one
        a rule forbids (a group and an individual, a merge undone by hand) is rejected. Every one is kept."""
        st, rules = self.st, self.namer.rules
        items = [
            _Proposal("same_as", p.id, p.same_as, p.confidence, clean(p.evidence))
            for p in self.answer.same_as
        ] + self.proposals
        merges: list[Any] = []
        existing = {
            (p.from_id, p.into_id, p.source)
            for p in self.s.scalars(
                select(IdentityProposal).where(IdentityProposal.segment_id == self.segment.id)
            )
        }
        for item in items:
            what = f"{item.source} proposal {short(item.raw_from, 30)} = {short(item.raw_into, 30)}"
            a = st.canonical(item.from_record) if item.from_record is not None else self._ref(item.raw_from)
            b = self._ref(item.raw_into)
            if a is None or b is None:
                missing = item.raw_from if a is None else item.raw_into
                self.warnings.append(f"{what} ignored: {short(missing)} is not a known character")
                continue
            if a == b:
                continue  # one person already (a re-apply, or the names merged them)
            into, frm = sorted((a, b), key=st.preference)
            if (frm, into, item.source) in existing:
                continue
            existing.add((frm, into, item.source))
            status, note, merge = "merged", "", None
            why = rules.block(frm, into)
            if why is not None:
                forbidden = st.exempt(frm, into) or rules.kind(frm) != rules.kind(into)
                status, note = ("rejected" if forbidden else "pending"), why
            elif item.confidence == "low":
                status, note = "pending", "low confidence: waiting for a reviewer"
            else:
                reason = f"{item.source} ({item.confidence}): {item.evidence or 'no evidence given'}"
                merge = st.merge(frm, into, reason[:MAX_TEXT], self.segment.id)
                merges.append(merge)
            if status != "merged":
                self.warnings.append(
                    f"{what}: {status} ({note}); merge by hand with "
                    f"`v2s profiles merge {st.chars[frm].code} {st.chars[into].code}` if it is right"
                )
            self.s.flush()
            self.s.add(
                IdentityProposal(
                    scope=st.scope,
                    segment_id=self.segment.id,
                    from_id=frm,
                    into_id=into,
                    source=item.source,
                    confidence=item.confidence,
                    evidence=item.evidence[:MAX_TEXT],
                    status=status,
                    note=note,
                    merge_id=merge.id if merge is not None else None,
                )
            )
            self.decided.append((st.chars[frm].code, st.chars[into].code, status))
        return merges

    # -- relationships and the plot ------------------------------------------------------------------
    def _ref(self, raw: str) -> int | None:
        """The character an id in this answer means: its entries, any known code, or a unique name."""
        cid = self.ids.get(raw)
        if cid is None:
            cid = self.st.lookup(raw)
        if cid is None:
            owners = self.st.owners(normalize_name(raw)) if normalize_name(raw) else []
            cid = owners[0] if len(owners) == 1 else None
        return None if cid is None else self.st.canonical(cid)

    def _relationships(self) -> None:
        st, seg, s = self.st, self.segment, self.s
        existing: dict[tuple[int, int, str], Relationship] = {}
        for rel in s.scalars(select(Relationship).where(Relationship.scope == st.scope)):
            existing.setdefault((min(rel.a_id, rel.b_id), max(rel.a_id, rel.b_id), label_key(rel.label)), rel)
        for r in self.answer.relationships:
            what = f"relationship {short(r.char1_id, 30)}–{short(r.char2_id, 30)}"
            a, b = self._ref(r.char1_id), self._ref(r.char2_id)
            if a is None or b is None:
                missing = r.char1_id if a is None else r.char2_id
                self.warnings.append(f"{what} ignored: {short(missing)} is not a known character")
                continue
            if a == b:
                self.warnings.append(f"{what} ignored: a character's relationship with itself")
                continue
            label = check_text(r.relationship, f"{what} label", self.warnings, MAX_LABEL)
            if not label:
                self.warnings.append(f"{what} ignored: no relationship given")
                continue
            evidence = check_text(r.evidence, f"{what} evidence", self.warnings) or ""
            key = (min(a, b), max(a, b), label_key(label))
            rel = existing.get(key)
            if rel is None:
                rel = Relationship(
                    scope=st.scope,
                    a_id=a,
                    b_id=b,
                    label=label,
                    evidence=evidence,
                    first_segment_id=seg.id,
                    last_segment_id=seg.id,
                )
                s.add(rel)
                existing[key] = rel
                continue
            if evidence and evidence not in rel.evidence and len(rel.evidence) + len(evidence) < MAX_TEXT:
                rel.evidence = f"{rel.evidence} | {evidence}" if rel.evidence else evidence
            pos = st.positions
            if pos.get(rel.first_segment_id, 1 << 30) > self.position:
                rel.first_segment_id = seg.id
            if pos.get(rel.last_segment_id, 0) < self.position:
                rel.last_segment_id = seg.id

    def _code_map(self) -> dict[str, str]:
        a = self.answer
        used = [
            *(e.id for e in a.characters),
            *(e.matched_from for e in a.characters if e.matched_from),
            *(u.unknown_id for u in a.name_updates),
            *(x for r in a.relationships for x in (r.char1_id, r.char2_id)),
            *(c for ev in a.plot_summary.main_events for c in ev.involved_characters),
            *(n.id for n in a.new_characters_summary),
        ]
        out: dict[str, str] = {}
        for raw in dict.fromkeys(used):
            cid = self._ref(raw)
            if cid is not None:
                out[clean(raw)] = self.st.chars[cid].code
        return out

    def _store_plot(self, code_map: dict[str, str], prior_map: dict[str, str]) -> None:
        a, seg = self.answer, self.segment
        narrative = clean(a.plot_summary.narrative)
        continuity = clean(a.segment_info.continuity_note) or clean(a.plot_summary.connection_to_previous)
        plot = self.s.get(SegmentPlot, seg.id)
        if plot is None:
            plot = SegmentPlot(segment_id=seg.id)
            self.s.add(plot)
        plot.scope = self.st.scope
        plot.summary = _summary(a, lambda code: code_map.get(code, code))
        plot.narrative = narrative
        plot.continuity_note = continuity or None
        plot.main_events = sanitize([ev.model_dump(mode="json") for ev in a.plot_summary.main_events])
        plot.code_map = {**sanitize(prior_map), **code_map}


# -- reading profiles -----------------------------------------------------------------------------------
def _profiles(
    s: Session, st: ScopeState, *, before: int | None = None, only: set[int] | None = None
) -> tuple[dict[str, CharacterProfile], dict[str, int]]:
    """Canonical profiles by code (as of before position `before`), and each one's centrality."""
    wanted = [c for c in st.canonical_ids() if only is None or c in only]
    members = {c: st.tree(c) for c in wanted}
    owner = {m: c for c, ms in members.items() for m in ms}
    obs: dict[int, list[Any]] = {c: [] for c in wanted}
    rows = s.execute(
        select(
            CharacterObservation.id,
            CharacterObservation.character_id,
            CharacterObservation.segment_id,
            CharacterObservation.appearance,
            CharacterObservation.voice,
            CharacterObservation.personality,
        ).where(CharacterObservation.character_id.in_(list(owner) or [-1]))
    )
    for row in rows:
        pos = st.positions.get(row.segment_id, 0)
        if before is None or pos < before:
            obs[owner[row.character_id]].append((pos, row))
    degree = dict.fromkeys(wanted, 0)
    for a_id, b_id in s.execute(
        select(Relationship.a_id, Relationship.b_id).where(Relationship.scope == st.scope)
    ):
        for side in {st.canonical(a_id), st.canonical(b_id)}:
            if side in degree:
                degree[side] += 1
    profiles: dict[str, CharacterProfile] = {}
    centrality: dict[str, int] = {}
    for cid in wanted:
        c, seen = st.chars[cid], sorted(obs[cid], key=lambda item: (item[0], item[1].id))
        if before is not None and not seen:
            continue  # not met yet at this point of the story
        name_norm = normalize_name(c.name) if c.name else None
        aliases: dict[str, str] = {}
        for m in members[cid]:
            for norm, alias in st.aliases.get(m, {}).items():
                if norm != name_norm:
                    aliases.setdefault(norm, alias.alias)
        history = _distinct_runs([r.appearance for _, r in seen if r.appearance])
        positions = [p for p, r in seen if r.segment_id in st.positions]
        former = {st.chars[m].code for m in members[cid]} | {f for m in members[cid] for f in st.former[m]}
        former.discard(c.code)
        profiles[c.code] = CharacterProfile(
            id=c.code,
            name=c.name,
            status=c.status,
            aliases=list(aliases.values()),
            appearance=history[-1] if history else c.appearance,
            appearance_history=history,
            voice=_latest(seen, "voice") or c.voice,
            personality=_latest(seen, "personality") or c.personality,
            role_type=c.role_type,
            first_seen_segment=min(positions) if positions else None,
            last_seen_segment=max(positions) if positions else None,
            appearances=len({r.segment_id for _, r in seen if r.segment_id is not None}),
            former_codes=sorted(former),
        )
        centrality[c.code] = profiles[c.code].appearances + degree[cid]
    return profiles, centrality


def _previous_summary(s: Session, st: ScopeState, position: int) -> str | None:
    """The summary of the nearest earlier segment that has one, its codes brought up to date."""
    earlier = {sid: p for sid, p in st.positions.items() if p < position}
    if not earlier:
        return None
    rows = s.execute(
        select(SegmentPlot.segment_id, SegmentPlot.summary).where(SegmentPlot.segment_id.in_(list(earlier)))
    ).all()
    rows = [r for r in rows if r.summary]
    if not rows:
        return None
    latest = max(rows, key=lambda r: earlier[r.segment_id])

    def current(code: str) -> str:
        cid = st.lookup(code)
        return st.chars[cid].code if cid is not None else code

    return replace_codes(latest.summary, current)


def _fit(ctx: CharacterContext, ordered: list[CharacterProfile], budget: int) -> CharacterContext:
    """Add profiles in priority order while the context's estimate (len(json)/4 tokens) stays in budget."""
    if ctx.previous_summary and _tokens(ctx) > budget // 2:  # the story so far may use half, at most
        keep = max(0, (budget // 2) * 4 - 200)
        ctx.previous_summary = ctx.previous_summary[:keep].rstrip() + "…"
    remaining = budget - _tokens(ctx)
    kept: list[CharacterProfile] = []
    for profile in ordered:
        profile = profile.model_copy(
            update={"appearance_history": profile.appearance_history[-HISTORY_IN_CONTEXT:]}
        )
        cost = (len(profile.model_dump_json()) + 1) / 4
        if cost > remaining:  # try the profile without its history and with shorter notes
            profile = profile.model_copy(
                update={
                    "appearance_history": [],
                    "appearance": profile.appearance[:300],
                    "voice": profile.voice[:150],
                    "personality": profile.personality[:150],
                }
            )
            cost = (len(profile.model_dump_json()) + 1) / 4
            if cost > remaining:
                break
        kept.append(profile)
        remaining -= cost
    ctx.characters = kept
    ctx.omitted_characters = len(ordered) - len(kept)
    return ctx


# -- small helpers ------------------------------------------------------------------------------------
def _position(st: ScopeState, segment_id: int) -> int:
    position = st.positions.get(segment_id)
    if position is None:
        raise ValueError(f"segment {segment_id} is not a segment of a video of scope {st.scope!r}")
    return position


def _check_chain_order(s: Session, st: ScopeState, segment_id: int) -> None:
    """Segment k is applied only after every earlier segment of the scope is applied or given up (a plot stage
    rejected with outcome given_up), and never after a later one — except as a re-apply of itself."""
    position = _position(st, segment_id)
    applied = set(
        s.scalars(select(SegmentPlot.segment_id).where(SegmentPlot.segment_id.in_(list(st.positions))))
    )
    if segment_id in applied:
        return  # a re-apply (a retried task): additive and idempotent
    given_up = set(
        s.scalars(
            select(StageRun.segment_id).where(
                StageRun.segment_id.in_(list(st.positions)),
                StageRun.stage == "plot",
                StageRun.status == "rejected",
            )
        )
    )
    holes = [sid for sid, p in st.positions.items() if p < position and sid not in applied | given_up]
    later = [sid for sid, p in st.positions.items() if p > position and sid in applied]
    if holes:
        first = min(holes, key=st.positions.__getitem__)
        raise ChainOrderError(
            f"segment {segment_id} (position {position} of scope {st.scope!r}) cannot be applied before segment "
            f"{first} (position {st.positions[first]}), which is neither applied nor given up"
        )
    if later:
        last = max(later, key=st.positions.__getitem__)
        raise ChainOrderError(
            f"segment {segment_id} (position {position} of scope {st.scope!r}) comes before segment {last} "
            f"(position {st.positions[last]}), which is applied already: memory is written in order"
        )


def _log(scope: str, what: str, warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("cpm %s %s: %s", scope, what, warning)


def _known(st: ScopeState, code: str) -> int:
    cid = st.lookup(code)
    if cid is None:
        raise ValueError(f"{code!r} is not a character code of scope {st.scope!r}")
    return cid


def _summary(answer: PlotReasoning, canon: Callable[[str], str]) -> str:
    """A short summary for the next segment's prompt: the narrative's opening, else the main events."""
    text_ = clean(answer.plot_summary.narrative)
    if not text_:
        text_ = " ".join(clean(ev.description) for ev in answer.plot_summary.main_events if ev.description)
    text_ = re.sub(r"\s+", " ", text_)
    if len(text_) > SUMMARY_CHARS:
        cut = text_[:SUMMARY_CHARS]
        end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
        text_ = cut[: end + 1] if end > SUMMARY_CHARS // 2 else cut.rstrip() + "…"
    return replace_codes(text_, canon)


def _union(data: dict[str, Any], extra: dict[str, Any]) -> None:
    """Fold a duplicate entry's fields into the first: lists concatenated, blanks filled, nested too."""
    for key, value in extra.items():
        if isinstance(value, list):
            data[key] = [*(data.get(key) or []), *value]
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            _union(data[key], value)
        elif not data.get(key) or (key == "name" and is_unnamed(data[key])):
            data[key] = value


def _distinct_runs(values: list[str]) -> list[str]:
    """Appearance history: each look once per run (a costume change shows, a repeated description does not)."""
    out: list[str] = []
    for value in values:
        if not out or normalize_name(out[-1]) != normalize_name(value):
            out.append(value)
    return out


def _latest(seen: list[tuple[int, Any]], field: str) -> str:
    return next((getattr(r, field) for _, r in reversed(seen) if getattr(r, field)), "")


def _tokens(model: BaseModel) -> float:
    return len(model.model_dump_json()) / 4


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


__all__ = ["ApplyReport", "CharacterProfileManager"]
