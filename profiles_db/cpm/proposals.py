"""The model's same-person proposals of one answer, decided and kept.

A confident one merges (the later record into the earlier, recorded and reversible), a weak one or one the
names contradict waits for review, and one a rule forbids (a group and an individual, a merge undone by hand)
is rejected. Every one is kept as an `identity_proposals` row, once per segment, pair and source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.schemas import PlotReasoning
from profiles_db.cpm.identity import IdentityRules
from profiles_db.cpm.state import ScopeState
from profiles_db.models import IdentityProposal, Merge
from profiles_db.normalize import MAX_TEXT, clean, short


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


@dataclass(frozen=True)
class _Decision:
    status: str  # merged | pending | rejected
    note: str = ""
    merge: Merge | None = None


def same_as_proposals(answer: PlotReasoning) -> list[_Proposal]:
    return [_Proposal("same_as", p.id, p.same_as, p.confidence, clean(p.evidence)) for p in answer.same_as]


def decide_proposals(
    s: Session,
    st: ScopeState,
    rules: IdentityRules,
    segment_id: int,
    items: list[_Proposal],
    ref: Callable[[str], int | None],
    warnings: list[str],
) -> tuple[list[Merge], list[tuple[str, str, str]]]:
    """Decide and record every proposal; returns the merges made and (from_code, into_code, status) of each
    proposal recorded now (one already recorded for this segment, or about one person already, is skipped)."""
    merges: list[Merge] = []
    decided: list[tuple[str, str, str]] = []
    existing = {
        (p.from_id, p.into_id, p.source)
        for p in s.scalars(select(IdentityProposal).where(IdentityProposal.segment_id == segment_id))
    }
    for item in items:
        pair = _pair(st, item, ref, warnings)
        if pair is None or (*pair, item.source) in existing:
            continue
        frm, into = pair
        existing.add((frm, into, item.source))
        decision = _decide(st, rules, item, frm, into, segment_id)
        if decision.merge is not None:
            merges.append(decision.merge)
        else:
            warnings.append(
                f"{_what(item)}: {decision.status} ({decision.note}); merge by hand with "
                f"`v2s profiles merge {st.chars[frm].code} {st.chars[into].code}` if it is right"
            )
        s.flush()
        s.add(_row(st, segment_id, item, frm, into, decision))
        decided.append((st.chars[frm].code, st.chars[into].code, decision.status))
    return merges, decided


def _what(item: _Proposal) -> str:
    return f"{item.source} proposal {short(item.raw_from, 30)} = {short(item.raw_into, 30)}"


def _pair(
    st: ScopeState, item: _Proposal, ref: Callable[[str], int | None], warnings: list[str]
) -> tuple[int, int] | None:
    """(from, into) canonical records of a proposal, the one merge would keep second; None when a side is not
    a known character (with a warning) or both are one person already (a re-apply, or the names merged them)."""
    a = st.canonical(item.from_record) if item.from_record is not None else ref(item.raw_from)
    b = ref(item.raw_into)
    if a is None or b is None:
        missing = item.raw_from if a is None else item.raw_into
        warnings.append(f"{_what(item)} ignored: {short(missing)} is not a known character")
        return None
    if a == b:
        return None
    into, frm = sorted((a, b), key=st.preference)
    return frm, into


def _decide(
    st: ScopeState, rules: IdentityRules, item: _Proposal, frm: int, into: int, segment_id: int
) -> _Decision:
    why = rules.block(frm, into)
    if why is not None:
        forbidden = st.exempt(frm, into) or rules.kind(frm) != rules.kind(into)
        return _Decision("rejected" if forbidden else "pending", why)
    if item.confidence == "low":
        return _Decision("pending", "low confidence: waiting for a reviewer")
    reason = f"{item.source} ({item.confidence}): {item.evidence or 'no evidence given'}"
    return _Decision("merged", merge=st.merge(frm, into, reason[:MAX_TEXT], segment_id))


def _row(
    st: ScopeState, segment_id: int, item: _Proposal, frm: int, into: int, decision: _Decision
) -> IdentityProposal:
    return IdentityProposal(
        scope=st.scope,
        segment_id=segment_id,
        from_id=frm,
        into_id=into,
        source=item.source,
        confidence=item.confidence,
        evidence=item.evidence[:MAX_TEXT],
        status=decision.status,
        note=decision.note,
        merge_id=decision.merge.id if decision.merge is not None else None,
    )
