"""Reading the memory: canonical profiles (as of a point of the story), the previous summary, the context in budget."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.schemas import CharacterContext, CharacterProfile
from annotator.schemas.plot import replace_codes
from profiles_db.cpm.state import ScopeState
from profiles_db.models import CharacterObservation, Relationship, SegmentPlot
from profiles_db.normalize import normalize_name

RECENT_SEGMENTS = 3  # characters seen this many segments ago or less come first in a tight context
HISTORY_IN_CONTEXT = 5  # latest looks per character shown to the model


def _profiles(
    s: Session, st: ScopeState, *, before: int | None = None, only: set[int] | None = None
) -> tuple[dict[str, CharacterProfile], dict[str, int]]:
    """Canonical profiles by code (as of before position `before`), and each one's centrality."""
    wanted = [c for c in st.canonical_ids() if only is None or c in only]
    members = {c: st.tree(c) for c in wanted}
    seen_by = _observations(s, st, members, before)
    degree = _degrees(s, st, wanted)
    profiles: dict[str, CharacterProfile] = {}
    centrality: dict[str, int] = {}
    for cid in wanted:
        seen = seen_by[cid]
        if before is not None and not seen:
            continue  # not met yet at this point of the story
        profile = _profile(st, cid, members[cid], seen)
        profiles[profile.id] = profile
        centrality[profile.id] = profile.appearances + degree[cid]
    return profiles, centrality


def _observations(
    s: Session, st: ScopeState, members: dict[int, list[int]], before: int | None
) -> dict[int, list[tuple[int, Any]]]:
    """Each canonical record's observations (its own and its folded records'), as (position, row) in story
    order; those at or after position `before` left out."""
    owner = {m: c for c, ms in members.items() for m in ms}
    obs: dict[int, list[tuple[int, Any]]] = {c: [] for c in members}
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
    return {c: sorted(seen, key=lambda item: (item[0], item[1].id)) for c, seen in obs.items()}


def _degrees(s: Session, st: ScopeState, wanted: list[int]) -> dict[int, int]:
    """How many relationships each canonical record takes part in (all of the scope's, whatever their time)."""
    degree = dict.fromkeys(wanted, 0)
    for a_id, b_id in s.execute(
        select(Relationship.a_id, Relationship.b_id).where(Relationship.scope == st.scope)
    ):
        for side in {st.canonical(a_id), st.canonical(b_id)}:
            if side in degree:
                degree[side] += 1
    return degree


def _profile(st: ScopeState, cid: int, members: list[int], seen: list[tuple[int, Any]]) -> CharacterProfile:
    """One canonical record's profile: descriptions from its latest observations, names and codes from every
    record folded into it."""
    c = st.chars[cid]
    name_norm = normalize_name(c.name) if c.name else None
    aliases: dict[str, str] = {}
    for m in members:
        for norm, alias in st.aliases.get(m, {}).items():
            if norm != name_norm:
                aliases.setdefault(norm, alias.alias)
    history = _distinct_runs([r.appearance for _, r in seen if r.appearance])
    positions = [p for p, r in seen if r.segment_id in st.positions]
    former = {st.chars[m].code for m in members} | {f for m in members for f in st.former[m]}
    former.discard(c.code)
    return CharacterProfile(
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
