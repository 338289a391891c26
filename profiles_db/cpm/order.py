"""The scope's memory order: where a segment sits, and whether it may be applied now."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from profiles_db.cpm.results import ChainOrderError
from profiles_db.cpm.state import ScopeState
from profiles_db.models import SegmentPlot
from profiles_db.stages.chains import given_up_plots


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
    given_up = given_up_plots(s, st.positions)
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
