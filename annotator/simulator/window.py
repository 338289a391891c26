"""The part of the screenplay a request shows: events, scenes and cast inside [start_s, end_s).

Everything the simulator answers is built from a `Window`; times it hands out are clip-relative
(`rel`), i.e. seconds after `start_s`, formatted as "MM:SS".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from annotator.schemas.script import ENVIRONMENT, Scene, ScriptEvent
from annotator.schemas.timecode import format_timestamp
from annotator.simulator.screenplay import CastMember, Screenplay


@dataclass(frozen=True)
class SceneSpan:
    index: int  # position in the screenplay
    scene: Scene
    start_s: float
    end_s: float


class Window:
    def __init__(self, screenplay: Screenplay, start_s: float, end_s: float) -> None:
        self.screenplay = screenplay
        self.start_s = max(0.0, start_s)
        self.end_s = end_s
        self.is_last = end_s >= screenplay.duration_s - 1e-6

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    def covers_until(self, t: float) -> bool:
        """True when absolute time `t` is before the end of this window (the last window includes its end)."""
        return t < self.end_s or (self.is_last and t <= self.end_s + 1e-6)

    def contains(self, t: float) -> bool:
        return t >= self.start_s - 1e-6 and self.covers_until(t)

    def rel(self, t: float) -> str:
        """Clip-relative "MM:SS" of absolute time `t`, clamped into the window."""
        return format_timestamp(min(max(t, self.start_s), self.end_s) - self.start_s)

    # -- what is inside ----------------------------------------------------------------------------------
    @cached_property
    def scenes(self) -> list[SceneSpan]:
        """Scenes overlapping the window by more than half a second, in film order."""
        spans = self.screenplay.scene_spans()
        return [
            SceneSpan(i, scene, start, end)
            for i, (scene, (start, end)) in enumerate(zip(self.screenplay.script.script, spans, strict=True))
            if min(end, self.end_s) - max(start, self.start_s) > 0.5
            or any(self.contains(e.timestamp) for e in scene.events)
        ]

    @cached_property
    def events(self) -> list[tuple[SceneSpan, ScriptEvent]]:
        return [
            (span, event)
            for span in self.scenes
            for event in span.scene.events
            if self.contains(event.timestamp)
        ]

    @cached_property
    def members(self) -> list[CastMember]:
        """Cast members with at least one event in the window, in order of their first event."""
        seen: dict[str, CastMember] = {}
        for _, event in sorted(self.events, key=lambda pair: pair[1].timestamp):
            if event.character != ENVIRONMENT and event.character not in seen:
                member = self.screenplay.member(event.character)
                if member is not None:
                    seen[event.character] = member
        return list(seen.values())

    def events_of(self, member: CastMember) -> list[ScriptEvent]:
        return [event for _, event in self.events if event.character == member.name]

    def first_time(self, member: CastMember) -> float:
        return min(event.timestamp for event in self.events_of(member))

    def members_in(self, span: SceneSpan) -> list[str]:
        names: list[str] = []
        for s, event in self.events:
            if s.index == span.index and event.character != ENVIRONMENT and event.character not in names:
                names.append(event.character)
        return names

    # -- names ---------------------------------------------------------------------------------------------
    def named(self, member: CastMember) -> bool:
        """Has the film said this member's name by the end of the window?"""
        return member.named_at is None or self.covers_until(member.named_at)

    def mentions(self, member: CastMember) -> list[ScriptEvent]:
        """Dialogue lines in the window that say the member's name or one of the aliases."""
        words = [member.name, *member.aliases]
        pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words if w) + r")\b", re.I)
        return [event for _, event in self.events if event.dialogue and pattern.search(event.dialogue)]

    def name_spoken(self, member: CastMember) -> bool:
        """Is the member's name said (or first revealed) inside this window?"""
        revealed = member.named_at is not None and self.contains(member.named_at)
        return revealed or bool(self.mentions(member))

    def naming_evidence(self, member: CastMember) -> str:
        """The dialogue line that says the name, closest to `named_at`, quoted with its clip time."""
        lines = self.mentions(member)
        if lines:
            target = member.named_at if member.named_at is not None else self.start_s
            line = min(lines, key=lambda e: abs(e.timestamp - target))
            return f'"{line.dialogue}" ({self.rel(line.timestamp)})'
        return f"known as {member.name} from an earlier clip"

    def looks_until_end(self, member: CastMember) -> list[str]:
        """Every appearance text the member has had up to the end of the window, newest first."""
        looks = [member.appearance] + [c.appearance for c in member.costumes if self.covers_until(c.from_s)]
        return list(dict.fromkeys(reversed(looks)))
