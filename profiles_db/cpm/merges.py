"""Merge and unmerge writes: fold one canonical record into another, and undo exactly that.

A merge re-points the folded record's aliases, observations and relationships to the survivor and records in
`merges.moved` what it re-pointed (row ids) and what it had to drop (a duplicate alias or relationship, kept
as a snapshot). Unmerge points back only those rows, and only while they still point at the survivor, then
recreates what was dropped: rows the survivor gained on its own after the merge stay with it.
Which records are the same person is decided in identity.py; this module only carries it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from profiles_db.cpm.relationships import relationship_key
from profiles_db.models import CharacterAlias, CharacterObservation, Merge, Relationship, utcnow

if TYPE_CHECKING:
    from profiles_db.cpm.state import ScopeState

_CHUNK = 500  # ids per IN (...) list

Moved = dict[str, list[Any]]


# -- merge ----------------------------------------------------------------------------------------------
def merge_records(st: ScopeState, from_id: int, into_id: int, reason: str, segment_id: int | None) -> Merge:
    """Fold canonical `from_id` into canonical `into_id`, re-pointing its rows; `moved` lets unmerge undo it."""
    if st.canonical(from_id) != from_id or st.canonical(into_id) != into_id:
        raise ValueError("merge needs two canonical records")
    if from_id == into_id:
        raise ValueError(f"cannot merge {st.chars[from_id].code} into itself")
    moved: Moved = {
        "aliases": [],
        "aliases_dropped": [],
        "observations": [],
        "relationships": [],
        "relationships_dropped": [],
    }
    st.s.flush()  # pending alias rows need ids before they are recorded as moved
    _move_aliases(st, from_id, into_id, moved)
    _move_observations(st.s, from_id, into_id, moved)
    _move_relationships(st, from_id, into_id, moved)
    st.chars[from_id].merged_into = into_id
    row = Merge(from_id=from_id, into_id=into_id, segment_id=segment_id, reason=reason, moved=moved)
    st.s.add(row)
    st.recompute()
    st.s.flush()
    st.refresh_cache([into_id])
    return row


def _move_aliases(st: ScopeState, from_id: int, into_id: int, moved: Moved) -> None:
    into_aliases = st.aliases[into_id]
    for norm, alias in list(st.aliases.pop(from_id, {}).items()):
        if norm in into_aliases:  # same alias on both: keep one row, remember the other for unmerge
            moved["aliases_dropped"].append(
                {"alias": alias.alias, "normalized": norm, "segment_id": alias.segment_id}
            )
            st.s.delete(alias)
        else:
            alias.character_id = into_id
            into_aliases[norm] = alias
            moved["aliases"].append(alias.id)


def _move_observations(s: Session, from_id: int, into_id: int, moved: Moved) -> None:
    moved["observations"] = list(
        s.scalars(select(CharacterObservation.id).where(CharacterObservation.character_id == from_id))
    )
    s.execute(
        update(CharacterObservation)
        .where(CharacterObservation.character_id == from_id)
        .values(character_id=into_id)
        .execution_options(synchronize_session="fetch")
    )


def _move_relationships(st: ScopeState, from_id: int, into_id: int, moved: Moved) -> None:
    s = st.s
    keys = {relationship_key(r.a_id, r.b_id, r.label) for r in _relationships_of(s, st.scope, into_id)}
    for rel in _relationships_of(s, st.scope, from_id, ordered=True):
        a = into_id if rel.a_id == from_id else rel.a_id
        b = into_id if rel.b_id == from_id else rel.b_id
        key = relationship_key(a, b, rel.label)
        if a == b or key in keys:  # would be a self-relationship or a duplicate: park it in `moved`
            moved["relationships_dropped"].append(
                {
                    "a_id": rel.a_id,
                    "b_id": rel.b_id,
                    "label": rel.label,
                    "evidence": rel.evidence,
                    "first_segment_id": rel.first_segment_id,
                    "last_segment_id": rel.last_segment_id,
                }
            )
            s.delete(rel)
        else:
            moved["relationships"].append({"id": rel.id, "a": rel.a_id == from_id, "b": rel.b_id == from_id})
            rel.a_id, rel.b_id = a, b
            keys.add(key)


def _relationships_of(s: Session, scope: str, char_id: int, *, ordered: bool = False) -> list[Relationship]:
    query = select(Relationship).where(
        Relationship.scope == scope, or_(Relationship.a_id == char_id, Relationship.b_id == char_id)
    )
    return list(s.scalars(query.order_by(Relationship.id) if ordered else query))


# -- unmerge --------------------------------------------------------------------------------------------
def unmerge_record(st: ScopeState, record_id: int, warnings: list[str]) -> Merge | None:
    """Make a merged record canonical again and point back what its last merge moved."""
    s, record = st.s, st.chars[record_id]
    if record.merged_into is None:
        raise ValueError(f"{record.code} is not merged into another character")
    target = st.canonical(record.merged_into)
    merge = s.scalar(
        select(Merge)
        .where(Merge.from_id == record_id, Merge.undone_at.is_(None))
        .order_by(Merge.id.desc())
        .limit(1)
    )
    record.merged_into = None
    st.recompute()
    if merge is None:
        warnings.append(f"{record.code} had no merge record; redirect removed, nothing to move back")
        return None
    moved = merge.moved or {}
    _return_aliases(st, record_id, target, moved)
    _return_observations(s, record_id, target, moved.get("observations", []))
    _return_relationships(s, record_id, target, moved.get("relationships", []))
    s.flush()
    _restore_dropped_relationships(st, record_id, moved.get("relationships_dropped", []))
    for cid in (record_id, target):  # a name taken after the merge may have ridden on a moved alias row
        if st.chars[cid].name:
            st.add_alias(cid, st.chars[cid].name, None)
    merge.undone_at = utcnow()
    st.undone.add((merge.from_id, merge.into_id))
    s.flush()
    st.refresh_cache([record_id, target])
    return merge


def _return_aliases(st: ScopeState, record_id: int, target: int, moved: Moved) -> None:
    mine = st.aliases[record_id]
    for alias_id in moved.get("aliases", []):
        alias = st.s.get(CharacterAlias, alias_id)
        if alias is None or alias.character_id != target or alias.normalized in mine:
            continue
        st.aliases[target].pop(alias.normalized, None)
        alias.character_id = record_id
        mine[alias.normalized] = alias
    for snap in moved.get("aliases_dropped", []):
        st.add_alias(record_id, snap["alias"], snap.get("segment_id"))


def _return_observations(s: Session, record_id: int, target: int, ids: list[int]) -> None:
    for start in range(0, len(ids), _CHUNK):
        s.execute(
            update(CharacterObservation)
            .where(
                CharacterObservation.id.in_(ids[start : start + _CHUNK]),
                CharacterObservation.character_id == target,
            )
            .values(character_id=record_id)
            .execution_options(synchronize_session="fetch")
        )


def _return_relationships(s: Session, record_id: int, target: int, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        rel = s.get(Relationship, entry["id"])
        if rel is None:
            continue
        if entry.get("a") and rel.a_id == target:
            rel.a_id = record_id
        if entry.get("b") and rel.b_id == target:
            rel.b_id = record_id


def _restore_dropped_relationships(st: ScopeState, record_id: int, snaps: list[dict[str, Any]]) -> None:
    """Recreate the relationships the merge dropped as duplicates, between the records they join now."""
    s = st.s
    for snap in snaps:
        a = record_id if snap["a_id"] == record_id else _live(st, snap["a_id"])
        b = record_id if snap["b_id"] == record_id else _live(st, snap["b_id"])
        if a is None or b is None or a == b:
            continue
        exists = s.scalar(
            select(Relationship.id).where(
                Relationship.scope == st.scope,
                Relationship.a_id == a,
                Relationship.b_id == b,
                Relationship.label == snap["label"],
            )
        )
        if exists is None:
            s.add(
                Relationship(
                    scope=st.scope,
                    a_id=a,
                    b_id=b,
                    label=snap["label"],
                    evidence=snap.get("evidence") or "",
                    first_segment_id=snap.get("first_segment_id"),
                    last_segment_id=snap.get("last_segment_id"),
                )
            )


def _live(st: ScopeState, char_id: int) -> int | None:
    """The canonical record of a character still in the scope, else None."""
    return st.canonical(char_id) if char_id in st.chars else None
