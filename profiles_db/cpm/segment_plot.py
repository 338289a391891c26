"""A segment's stored plot: the map of every id its answer used to a canonical code, and the `segment_plots` row."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy.orm import Session

from annotator.schemas import PlotReasoning
from annotator.schemas.plot import replace_codes
from profiles_db.cpm.state import ScopeState
from profiles_db.models import Segment, SegmentPlot
from profiles_db.normalize import clean, sanitize

SUMMARY_CHARS = 800  # the stored "short summary" of a segment


def answer_code_map(
    answer: PlotReasoning, st: ScopeState, ref: Callable[[str], int | None]
) -> dict[str, str]:
    """Every id the answer used, anywhere in it, that `ref` resolves → the canonical code it means now."""
    used = [
        *(e.id for e in answer.characters),
        *(e.matched_from for e in answer.characters if e.matched_from),
        *(u.unknown_id for u in answer.name_updates),
        *(x for r in answer.relationships for x in (r.char1_id, r.char2_id)),
        *(c for ev in answer.plot_summary.main_events for c in ev.involved_characters),
        *(n.id for n in answer.new_characters_summary),
    ]
    out: dict[str, str] = {}
    for raw in dict.fromkeys(used):
        cid = ref(raw)
        if cid is not None:
            out[clean(raw)] = st.chars[cid].code
    return out


def store_plot(
    s: Session,
    scope: str,
    segment: Segment,
    answer: PlotReasoning,
    code_map: dict[str, str],
    prior_map: dict[str, str],
) -> None:
    """Write (or rewrite) the segment's plot row; the code map keeps the ids an earlier apply mapped."""
    narrative = clean(answer.plot_summary.narrative)
    continuity = clean(answer.segment_info.continuity_note) or clean(
        answer.plot_summary.connection_to_previous
    )
    plot = s.get(SegmentPlot, segment.id)
    if plot is None:
        plot = SegmentPlot(segment_id=segment.id)
        s.add(plot)
    plot.scope = scope
    plot.summary = _summary(answer, lambda code: code_map.get(code, code))
    plot.narrative = narrative
    plot.continuity_note = continuity or None
    plot.main_events = sanitize([ev.model_dump(mode="json") for ev in answer.plot_summary.main_events])
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
