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
from annotator.simulator.screenplay import OFF_SCREEN, CastMember, Screenplay, norm_name


@dataclass(frozen=True)
class SceneSpan:
    index: int  # position in the screenplay
    scene: Scene
    start_s: float
    end_s: float


class Window:
    """`heard=False`: the request carried pictures only (or sound of something else), so nothing said or
    sounding inside the window reaches the answer: no dialogue, no cues, no name first said here, no line
    spoken off screen (what a vision-only model of this film could tell)."""

    def __init__(self, screenplay: Screenplay, start_s: float, end_s: float, *, heard: bool = True) -> None:
        self.screenplay = screenplay
        self.start_s = max(0.0, start_s)
        self.end_s = end_s
        self.heard = heard
        # the pictures' times are read to the centisecond, so the last frame may end a hair before the film
        self.is_last = end_s >= screenplay.duration_s - 0.02

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
        inside = [
            (span, event)
            for span in self.scenes
            for event in span.scene.events
            if self.contains(event.timestamp)
        ]
        if self.heard:
            return inside
        # a line said on screen is still seen being said (the film frames its speaker), just not understood
        return [
            (
                span,
                event.model_copy(
                    update={
                        "dialogue": None,
                        "audio_cue": None,
                        "voice_type": None,
                        "action": event.action or ("speaks" if event.dialogue else None),
                    }
                ),
            )
            for span, event in inside
            if event.action
            or (
                event.character != ENVIRONMENT
                and event.voice_type not in OFF_SCREEN
                and (event.dialogue or event.expression)
            )
        ]

    def said_by_end(self, t: float) -> bool:
        """Could the model know something said at film time `t`? Said before the window (through the memory),
        or inside it when the request's sound was heard."""
        return self.covers_until(t) if self.heard else t < self.start_s - 1e-6

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
        """Has the film said this member's name (any form of it) by the end of the window?"""
        first = member.first_named_at()
        return first is None or self.said_by_end(first)

    def heard_names(self, member: CastMember) -> list[tuple[str, float | None]]:
        """The forms of the member's name said by the end of the window, in the order they are said (the full
        name last once `named_at` is reached); empty while the member is unnamed."""
        return [(name, at) for name, at in member.spoken_names() if at is None or self.said_by_end(at)]

    def reported_name(self, member: CastMember) -> str | None:
        """The proper name a model reports at the end of the window: the form said last. None while unnamed."""
        heard = self.heard_names(member)
        return heard[-1][0] if heard else None

    def known_names(self, member: CastMember) -> list[str]:
        """Names the model can recognise the member by at the end of the window: the forms heard so far, and
        the aliases once named (but no form not said yet), leaving out names another cast member shares."""
        heard = [name for name, _ in self.heard_names(member)]
        if not heard:
            return []
        unsaid = {norm_name(f.name) for f in member.name_forms} - {norm_name(n) for n in heard}
        if member.named_at is not None and not self.said_by_end(member.named_at):
            unsaid.add(norm_name(member.name))
        shared = self.screenplay.shared_names()
        names = [*heard, *member.aliases]
        return [n for n in dict.fromkeys(names) if norm_name(n) not in shared and norm_name(n) not in unsaid]

    def mentions(self, member: CastMember, names: list[str] | None = None) -> list[ScriptEvent]:
        """Dialogue lines in the window that say one of `names` (default: the member's name, aliases and name
        forms that no other cast member shares)."""
        if names is None:
            shared = self.screenplay.shared_names()
            names = [n for n in member.all_names() if norm_name(n) not in shared]
        words = [w for w in names if w.strip()]
        if not words:
            return []
        pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.I)
        return [event for _, event in self.events if event.dialogue and pattern.search(event.dialogue)]

    def name_spoken(self, member: CastMember) -> bool:
        """Is the member's name said (or first revealed) inside this window?"""
        revealed = any(at is not None and self.contains(at) for _, at in member.spoken_names())
        return revealed or bool(self.mentions(member))

    def naming_evidence(self, member: CastMember) -> str:
        """The dialogue line that says the name, closest to `named_at`, quoted with its clip time."""
        return self.name_evidence(member) or f"known as {member.name} from an earlier clip"

    def name_evidence(self, member: CastMember, form: str | None = None) -> str | None:
        """The line in the window that says `form` (default: the full name), closest to when that form is
        first said, quoted with its clip time; failing that, the line saying any of the member's names; None
        when the window has no such line."""
        form = form or member.name
        target = dict(member.spoken_names()).get(form)
        lines = self.mentions(member, [form]) or self.mentions(member)
        if not lines:
            return None
        target = target if target is not None else self.start_s
        line = min(lines, key=lambda e: abs(e.timestamp - target))
        return f'"{line.dialogue}" ({self.rel(line.timestamp)})'

    def looks_until_end(self, member: CastMember) -> list[str]:
        """Every appearance text the member has had up to the end of the window, newest first."""
        looks = [member.appearance] + [c.appearance for c in member.costumes if self.covers_until(c.from_s)]
        return list(dict.fromkeys(reversed(looks)))
