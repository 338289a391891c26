"""How a character came to be who the memory says: its name history and the identity proposals about it.

Read for `v2s profiles show` (and documented as SQL in docs/sql.md). Codes quoted inside stored evidence are
brought up to date (a line that says `unknown_001` reads as the canonical code now), as records are at export.
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import or_, select

from annotator.schemas.plot import replace_codes
from profiles_db.cpm.state import ScopeState
from profiles_db.db import Database
from profiles_db.models import IdentityProposal, NameEvent, Segment


class NameChange(BaseModel):
    segment: int | None  # position in the scope
    video_id: str | None
    old_code: str
    new_code: str | None
    old_name: str | None
    new_name: str
    evidence: str


class ProposalView(BaseModel):
    segment: int | None
    from_code: str
    into_code: str
    source: str
    confidence: str
    status: str  # pending | merged | rejected
    evidence: str
    note: str


class IdentityHistory(BaseModel):
    code: str
    name_history: list[NameChange]
    proposals: list[ProposalView]  # pending ones first

    @property
    def pending(self) -> list[ProposalView]:
        return [p for p in self.proposals if p.status == "pending"]


def identity_history(db: Database, scope: str, code: str) -> IdentityHistory | None:
    """Name events of the canonical record behind `code` and of every record folded into it, in story order,
    and the proposals that concern any of them; None when the code is not of the scope."""
    with db.sessions() as s:
        st = ScopeState(s, scope)
        cid = st.lookup(code)
        if cid is None:
            return None
        tree = st.tree(cid)

        def current(text: str) -> str:
            def fix(found_code: str) -> str:
                found = st.lookup(found_code)
                return st.chars[found].code if found is not None else found_code

            return replace_codes(text or "", fix)

        videos = dict(
            s.execute(select(Segment.id, Segment.video_id).where(Segment.id.in_(list(st.positions)))).all()
        )
        events = s.scalars(
            select(NameEvent).where(NameEvent.character_id.in_(tree)).order_by(NameEvent.id)
        ).all()
        history = [
            NameChange(
                segment=st.positions.get(e.segment_id),
                video_id=videos.get(e.segment_id),
                old_code=e.old_code,
                new_code=e.new_code,
                old_name=e.old_name,
                new_name=e.new_name,
                evidence=current(e.evidence),
            )
            for e in events
        ]
        history.sort(key=lambda h: (h.segment is None, h.segment or 0))
        rows = s.scalars(
            select(IdentityProposal)
            .where(or_(IdentityProposal.from_id.in_(tree), IdentityProposal.into_id.in_(tree)))
            .order_by(IdentityProposal.id)
        ).all()
        proposals = [
            ProposalView(
                segment=st.positions.get(p.segment_id),
                from_code=st.chars[p.from_id].code,
                into_code=st.chars[p.into_id].code,
                source=p.source,
                confidence=p.confidence,
                status=p.status,
                evidence=current(p.evidence),
                note=p.note,
            )
            for p in rows
        ]
        proposals.sort(key=lambda p: p.status != "pending")
        return IdentityHistory(code=st.chars[cid].code, name_history=history, proposals=proposals)
