"""One segment's plot answer folded into the scope's memory: entries, name updates, identity proposals, relationships, the stored plot."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.schemas import PlotReasoning, is_unnamed
from annotator.schemas.plot import NameUpdate, PlotCharacter, replace_codes
from profiles_db.cpm.identity import (
    is_proper,
)
from profiles_db.cpm.naming import _Namer
from profiles_db.cpm.order import _position
from profiles_db.cpm.results import ApplyReport, _Proposal
from profiles_db.cpm.state import ScopeState, label_key
from profiles_db.models import (
    Character,
    CharacterObservation,
    IdentityProposal,
    Relationship,
    Segment,
    SegmentPlot,
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

SUMMARY_CHARS = 800  # the stored "short summary" of a segment


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


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
