"""What one segment answer saw of each character: the observation history that is never overwritten."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator.schemas.plot import PlotCharacter
from profiles_db.cpm.state import ScopeState
from profiles_db.models import CharacterObservation, Segment
from profiles_db.normalize import check_text, clean, parse_code

_DESCRIPTIONS = ("appearance", "voice", "personality")


class _Observations:
    """One observation per character and segment answer; what this segment already has is never added again
    (a re-apply must not duplicate it)."""

    def __init__(self, s: Session, st: ScopeState, segment: Segment, warnings: list[str]) -> None:
        self.s, self.st, self.segment, self.warnings = s, st, segment, warnings
        rows = s.scalars(
            select(CharacterObservation).where(
                CharacterObservation.segment_id == segment.id,
                CharacterObservation.character_id.in_(list(st.chars) or [-1]),
            )
        )
        self.seen = {
            _key(
                st.canonical(o.character_id),
                o.source_code,
                o.appearance,
                o.voice,
                o.personality,
                o.timestamps,
            )
            for o in rows
        }

    def record(self, cid: int, e: PlotCharacter) -> None:
        info, code = e.new_info, self.st.chars[cid].code
        stamps = self._timestamps(e)
        fields = {
            key: check_text(
                (getattr(info, key, None) if info else None) or getattr(e, key),
                f"{code} {key}",
                self.warnings,
            )
            for key in _DESCRIPTIONS
        }
        source = parse_code(e.id) or clean(e.id)[:32]
        key = _key(cid, source, fields["appearance"], fields["voice"], fields["personality"], stamps)
        if key in self.seen:
            return
        self.seen.add(key)
        self.s.add(
            CharacterObservation(
                character_id=cid, segment_id=self.segment.id, source_code=source, timestamps=stamps, **fields
            )
        )

    def _timestamps(self, e: PlotCharacter) -> list[dict[str, Any]]:
        """Where the entry says the character appears, clip-relative and absolute; its first appearance too."""
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
        return stamps


def _key(
    cid: int,
    source: str,
    appearance: str | None,
    voice: str | None,
    personality: str | None,
    timestamps: list[dict[str, Any]] | None,
) -> tuple:
    return (cid, source, appearance, voice, personality, _dumps(timestamps or []))


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
