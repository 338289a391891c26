"""One segment's plot answer folded into the scope's memory: the entries and name updates here; observations,
identity proposals, relationships and the stored plot in their own modules, called in the order `run` gives."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from annotator.schemas import PlotReasoning, is_unnamed
from annotator.schemas.plot import NameUpdate, PlotCharacter
from profiles_db.cpm.identity import is_proper
from profiles_db.cpm.naming import _Namer
from profiles_db.cpm.observations import _Observations
from profiles_db.cpm.order import _position
from profiles_db.cpm.proposals import _Proposal, decide_proposals, same_as_proposals
from profiles_db.cpm.relationships import record_relationships
from profiles_db.cpm.results import ApplyReport
from profiles_db.cpm.segment_plot import answer_code_map, store_plot
from profiles_db.cpm.state import ScopeState
from profiles_db.models import Character, Merge, Segment, SegmentPlot
from profiles_db.normalize import MAX_LABEL, check_name, check_text, clean, normalize_name, parse_code, short


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
        self.observations = _Observations(self.s, st, seg, self.warnings)
        for entry in entries:
            self._entry(entry, prior_map)
        for update in self.answer.name_updates:
            self._name_update(update)
        # relationships attach to the records the answer named, BEFORE same-name merges, so that an
        # unmerge hands them back to the right record
        record_relationships(
            self.s, st, seg, self.position, self.answer.relationships, self._ref, self.warnings
        )
        proposals = [*same_as_proposals(self.answer), *self.proposals]
        proposed, decided = decide_proposals(
            self.s, st, self.namer.rules, seg.id, proposals, self._ref, self.warnings
        )
        merges = [*self.namer.merges, *proposed]
        merges += self.namer.rules.settle(seg.id, self.warnings, self.namer.hints)
        code_map = answer_code_map(self.answer, st, self._ref)
        store_plot(self.s, st.scope, seg, self.answer, code_map, prior_map)
        self.s.flush()
        st.refresh_cache({st.canonical(i) for i in self.touched})
        return self._report(code_map, merges, decided)

    def _report(
        self, code_map: dict[str, str], merges: list[Merge], decided: list[tuple[str, str, str]]
    ) -> ApplyReport:
        """What the apply did, in the codes the records carry after it (a merge may have renamed them)."""
        st = self.st

        def codes(ids: list[int]) -> list[str]:
            return list(dict.fromkeys(st.chars[st.canonical(i)].code for i in ids))

        return ApplyReport(
            code_map=code_map,
            created=[st.chars[i].code for i in dict.fromkeys(self.created) if st.canonical(i) == i],
            matched=codes(self.matched),
            named=codes(self.namer.named),
            merged=[(st.chars[m.from_id].code, st.chars[m.into_id].code, m.reason) for m in merges],
            proposals=decided,  # (from_code, into_code, merged|pending|rejected)
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
            target = self._follow_match(e, matched_from, what)
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
        self.observations.record(target, e)

    def _follow_match(self, e: PlotCharacter, matched_from: str, what: str) -> int | None:
        """The known record `matched_from` names, when it is known and the match is confident enough to act
        on; a match that also contradicts the entry's own known id becomes a proposal, as does a weak one."""
        st = self.st
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
            return None
        if confidence == "low":
            # too weak to act on: the entry stays what its own id says, the proposal waits for review
            self.proposals.append(_Proposal("matched_from", e.id, matched_from, "low", clean(e.match_reason)))
            return None
        if own not in (None, known):  # its id is another known record: the model says they are one
            self.proposals.append(
                _Proposal("matched_from", e.id, matched_from, confidence, clean(e.match_reason), own)
            )
        return known

    def _create(self, e: PlotCharacter, name: str | None) -> int:
        st = self.st
        code = self._new_code(e, name)
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

    def _new_code(self, e: PlotCharacter, name: str | None) -> str:
        """The model's proposed id when it is a well-formed, never-issued code of the right kind, else the
        next free one (with a warning saying why)."""
        proposed = parse_code(e.id)
        # a proper name earns a char_ code and no name an unknown_ one; a record known only by a descriptor,
        # a relative term or a group label keeps the kind the model chose (it is provisional either way)
        if name is None:
            prefix = "unknown"
        elif is_proper(name):
            prefix = "char"
        else:
            prefix = proposed.split("_")[0] if proposed else "unknown"
        if proposed and proposed.startswith(prefix + "_") and proposed not in self.st.used:
            return proposed
        code = self.st.allocate(prefix, self.namer.reserved)
        why = (
            "is not a char_NNN/unknown_NNN code"
            if proposed is None
            else f"is the wrong kind for {'a named' if name else 'an unnamed'} character"
            if not proposed.startswith(prefix + "_")
            else "was issued before"
        )
        self.warnings.append(f"new character id {short(e.id)} {why}; issued {code}")
        return code

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

    # -- resolving the answer's ids -------------------------------------------------------------------
    def _ref(self, raw: str) -> int | None:
        """The character an id in this answer means: its entries, any known code, or a unique name."""
        cid = self.ids.get(raw)
        if cid is None:
            cid = self.st.lookup(raw)
        if cid is None:
            owners = self.st.owners(normalize_name(raw)) if normalize_name(raw) else []
            cid = owners[0] if len(owners) == 1 else None
        return None if cid is None else self.st.canonical(cid)


def _union(data: dict[str, Any], extra: dict[str, Any]) -> None:
    """Fold a duplicate entry's fields into the first: lists concatenated, blanks filled, nested too."""
    for key, value in extra.items():
        if isinstance(value, list):
            data[key] = [*(data.get(key) or []), *value]
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            _union(data[key], value)
        elif not data.get(key) or (key == "name" and is_unnamed(data[key])):
            data[key] = value
