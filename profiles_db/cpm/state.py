"""One scope's characters inside one transaction: redirects, codes, aliases, and the derived columns.

The CPM (profiles_db/cpm/) loads a `ScopeState` at the start of every transaction (the scope is small: tens to
hundreds of characters) and does all identity reasoning in memory, writing through the ORM session.

Invariants this module keeps (tests/cpm/test_property.py checks them):
- aliases, observations and relationships always point at canonical characters (merge re-points them,
  unmerge points back exactly what `merges.moved` says moved);
- every code ever issued in a scope (current codes and `name_events.old_code`) is never issued again and
  resolves, through `merged_into` chains, to a canonical record; chains with a cycle resolve to the
  cycle's lowest id (and `repair_cycles` breaks them on the next write);
- a character's name is also one of its `character_aliases` rows, so "same person by name" is one lookup
  of the normalised form.
Which records are the same person is decided in identity.py; merges.py carries a merge or unmerge out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from profiles_db.cpm.merges import merge_records, unmerge_record
from profiles_db.models import Character, CharacterAlias, CharacterObservation, Merge, NameEvent
from profiles_db.normalize import code_number, format_code, normalize_name, parse_code
from profiles_db.scope_order import scope_positions


class ScopeState:
    def __init__(self, session: Session, scope: str) -> None:
        self.s, self.scope = session, scope
        self.chars: dict[int, Character] = {
            c.id: c
            for c in session.scalars(select(Character).where(Character.scope == scope).order_by(Character.id))
        }
        self.aliases: dict[int, dict[str, CharacterAlias]] = defaultdict(dict)
        alias_rows = session.scalars(
            select(CharacterAlias)
            .join(Character, Character.id == CharacterAlias.character_id)
            .where(Character.scope == scope)
            .order_by(CharacterAlias.id)
        )
        for alias in alias_rows:
            self.aliases[alias.character_id].setdefault(alias.normalized, alias)
        self.codes: dict[str, int] = {}  # every code ever issued → the record that carried it
        self.former: dict[int, list[str]] = defaultdict(list)  # record → codes it had before a rename
        self.used: set[str] = set()
        events = session.execute(
            select(NameEvent.old_code, NameEvent.new_code, NameEvent.character_id)
            .join(Character, Character.id == NameEvent.character_id)
            .where(Character.scope == scope)
            .order_by(NameEvent.id)
        )
        for old, new, cid in events:
            self.used.update(c for c in (old, new) if c)
            if new and old != new:
                self.codes[old] = cid
                self.former[cid].append(old)
        for c in self.chars.values():
            self.codes[c.code] = c.id  # a current code wins over any stale former code
            self.used.add(c.code)
        self.undone: set[tuple[int, int]] = {
            (f, i)
            for f, i in session.execute(
                select(Merge.from_id, Merge.into_id)
                .join(Character, Character.id == Merge.from_id)
                .where(Character.scope == scope, Merge.undone_at.is_not(None))
            )
        }
        self.positions = scope_positions(session, scope)
        self.canon: dict[int, int] = {}
        self.cycles: list[list[int]] = []
        self.recompute()

    # -- redirects -------------------------------------------------------------------------------
    def recompute(self) -> None:
        """Canonical record of every character, following `merged_into`; a cycle resolves to its lowest id."""
        canon: dict[int, int] = {}
        self.cycles = []
        for start in self.chars:
            path: list[int] = []
            on_path: set[int] = set()
            cur = start
            while True:
                if cur in canon:
                    root = canon[cur]
                    break
                if cur in on_path:
                    cycle = path[path.index(cur) :]
                    self.cycles.append(cycle)
                    root = min(cycle)
                    break
                on_path.add(cur)
                path.append(cur)
                nxt = self.chars[cur].merged_into
                if nxt is None or nxt not in self.chars:  # points outside the scope: treat as canonical
                    root = cur
                    break
                cur = nxt
            for member in path:
                canon[member] = root
        self.canon = canon

    def repair_cycles(self, warnings: list[str]) -> None:
        for cycle in self.cycles:
            root = self.chars[min(cycle)]
            codes = " → ".join(self.chars[i].code for i in cycle)
            warnings.append(f"merge cycle {codes} broken: {root.code} is canonical again")
            root.merged_into = None
        if self.cycles:
            self.recompute()

    def canonical(self, char_id: int) -> int:
        return self.canon.get(char_id, char_id)

    def canonical_ids(self) -> list[int]:
        return sorted(set(self.canon.values()))

    def tree(self, canon_id: int) -> list[int]:
        """The canonical record and every record folded into it."""
        return [i for i, root in self.canon.items() if root == canon_id]

    def lookup(self, raw: str | None) -> int | None:
        """The canonical character of any code ever issued in the scope (lenient spelling), else None."""
        code = parse_code(raw)
        cid = self.codes.get(code) if code else None
        return None if cid is None else self.canonical(cid)

    def record(self, raw: str | None) -> int | None:
        """The record (not its canonical) that carries or carried this code."""
        code = parse_code(raw)
        return self.codes.get(code) if code else None

    def owners(self, norm: str, exclude: int | None = None) -> list[int]:
        """Canonical characters that have this normalised name/alias, in survivor-preference order."""
        found = {
            self.canonical(cid)
            for cid, by_norm in self.aliases.items()
            if norm in by_norm and self.canonical(cid) == cid
        }
        found.discard(exclude)  # type: ignore[arg-type]
        return sorted(found, key=self.preference)

    def preference(self, char_id: int) -> tuple[int, int]:
        """Which of two same-named records survives a merge: a named one, then the earlier one."""
        c = self.chars[char_id]
        return (0 if c.status == "named" else 1, c.id)

    def exempt(self, x: int, y: int) -> bool:
        """True when a human undid a merge between the two groups: never auto-merge them again."""
        if not self.undone:
            return False
        tx, ty = set(self.tree(x)), set(self.tree(y))
        return any((f in tx and i in ty) or (f in ty and i in tx) for f, i in self.undone)

    # -- codes -----------------------------------------------------------------------------------
    def allocate(self, prefix: str, reserved: Iterable[str] = ()) -> str:
        """The next free `prefix_NNN` of the scope; never a code issued before or proposed in this answer."""
        issued = {n for p, n in filter(None, map(code_number, self.used)) if p == prefix}
        proposed = {n for p, n in filter(None, map(code_number, reserved)) if p == prefix}
        number = max(issued, default=0) + 1
        while number in proposed:
            number += 1
        if number > 999_999:  # someone proposed char_999999: fill the lowest gap instead
            number = next(n for n in range(1, 1_000_000) if n not in issued | proposed)
        code = format_code(prefix, number)
        self.used.add(code)
        return code

    def add_character(self, character: Character) -> None:
        self.s.add(character)
        self.s.flush()
        self.chars[character.id] = character
        self.codes[character.code] = character.id
        self.used.add(character.code)
        self.canon[character.id] = character.id

    def recode(self, char_id: int, new_code: str) -> str:
        c = self.chars[char_id]
        old = c.code
        c.code = new_code
        self.codes[new_code] = char_id
        self.codes[old] = char_id
        self.former[char_id].append(old)
        self.used.update((old, new_code))
        return old

    # -- aliases ---------------------------------------------------------------------------------
    def add_alias(self, char_id: int, alias: str, segment_id: int | None) -> bool:
        norm = normalize_name(alias)[:512]
        if not norm or norm in self.aliases[char_id]:
            return False
        row = CharacterAlias(character_id=char_id, alias=alias, normalized=norm, segment_id=segment_id)
        self.s.add(row)
        self.aliases[char_id][norm] = row
        return True

    # -- merge / unmerge (the writes live in merges.py) -------------------------------------------
    def merge(self, from_id: int, into_id: int, reason: str, segment_id: int | None) -> Merge:
        """Fold canonical `from_id` into canonical `into_id`, re-pointing its rows; `moved` lets unmerge undo it."""
        return merge_records(self, from_id, into_id, reason, segment_id)

    def unmerge(self, record_id: int, warnings: list[str]) -> Merge | None:
        """Make a merged record canonical again and point back what its last merge moved."""
        return unmerge_record(self, record_id, warnings)

    # -- derived columns -------------------------------------------------------------------------
    def refresh_cache(self, char_ids: Iterable[int]) -> None:
        """`characters` columns that summarise observations: first/last seen and the latest descriptions."""
        ids = sorted({i for i in char_ids if i in self.chars})
        if not ids:
            return
        rows = self.s.execute(
            select(
                CharacterObservation.character_id,
                CharacterObservation.id,
                CharacterObservation.segment_id,
                CharacterObservation.appearance,
                CharacterObservation.voice,
                CharacterObservation.personality,
            ).where(CharacterObservation.character_id.in_(ids))
        ).all()
        by_char: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            by_char[row.character_id].append(row)
        for cid in ids:
            obs = sorted(by_char.get(cid, []), key=lambda r: (self.positions.get(r.segment_id, 0), r.id))
            c = self.chars[cid]
            seen = [r.segment_id for r in obs if r.segment_id in self.positions]
            if seen:
                c.first_seen_segment_id, c.last_seen_segment_id = seen[0], seen[-1]
            for field in ("appearance", "voice", "personality"):
                latest = next((getattr(r, field) for r in reversed(obs) if getattr(r, field)), None)
                if latest:
                    setattr(c, field, latest)
