"""Relationships between characters: when two rows say the same thing, and an answer's relationships recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.schemas.plot import PlotRelationship
from profiles_db.models import Relationship, Segment
from profiles_db.normalize import MAX_LABEL, MAX_TEXT, check_text, normalize_name, short

if TYPE_CHECKING:
    from profiles_db.cpm.state import ScopeState

RelationshipKey = tuple[int, int, str]


def label_key(label: str) -> str:
    """Relationship labels compare like names ("Friends" == "friends.")."""
    return normalize_name(label) or label.strip().casefold()


def relationship_key(a: int, b: int, label: str) -> RelationshipKey:
    """Two rows are one relationship when they join the same pair (either way round) with the same label."""
    return (min(a, b), max(a, b), label_key(label))


def record_relationships(
    s: Session,
    st: ScopeState,
    segment: Segment,
    position: int,
    relationships: list[PlotRelationship],
    ref: Callable[[str], int | None],
    warnings: list[str],
) -> None:
    """Add an answer's relationships between the characters `ref` resolves; one already known gains the new
    evidence and widens the span of segments it is seen in."""
    existing: dict[RelationshipKey, Relationship] = {}
    for rel in s.scalars(select(Relationship).where(Relationship.scope == st.scope)):
        existing.setdefault(relationship_key(rel.a_id, rel.b_id, rel.label), rel)
    for r in relationships:
        usable = _usable(r, ref, warnings)
        if usable is None:
            continue
        a, b, label, evidence = usable
        key = relationship_key(a, b, label)
        rel = existing.get(key)
        if rel is None:
            existing[key] = Relationship(
                scope=st.scope,
                a_id=a,
                b_id=b,
                label=label,
                evidence=evidence,
                first_segment_id=segment.id,
                last_segment_id=segment.id,
            )
            s.add(existing[key])
        else:
            _extend(rel, evidence, segment.id, position, st.positions)


def _usable(
    r: PlotRelationship, ref: Callable[[str], int | None], warnings: list[str]
) -> tuple[int, int, str, str] | None:
    """(a, b, label, evidence) of a relationship between two known, different characters, else None with
    a warning saying why it is ignored."""
    what = f"relationship {short(r.char1_id, 30)}–{short(r.char2_id, 30)}"
    a, b = ref(r.char1_id), ref(r.char2_id)
    if a is None or b is None:
        missing = r.char1_id if a is None else r.char2_id
        warnings.append(f"{what} ignored: {short(missing)} is not a known character")
        return None
    if a == b:
        warnings.append(f"{what} ignored: a character's relationship with itself")
        return None
    label = check_text(r.relationship, f"{what} label", warnings, MAX_LABEL)
    if not label:
        warnings.append(f"{what} ignored: no relationship given")
        return None
    evidence = check_text(r.evidence, f"{what} evidence", warnings) or ""
    return a, b, label, evidence


def _extend(
    rel: Relationship, evidence: str, segment_id: int, position: int, positions: dict[int, int]
) -> None:
    """A known relationship seen again: new evidence appended (while it fits), its first/last segment widened."""
    if evidence and evidence not in rel.evidence and len(rel.evidence) + len(evidence) < MAX_TEXT:
        rel.evidence = f"{rel.evidence} | {evidence}" if rel.evidence else evidence
    if positions.get(rel.first_segment_id, 1 << 30) > position:
        rel.first_segment_id = segment_id
    if positions.get(rel.last_segment_id, 0) < position:
        rel.last_segment_id = segment_id
