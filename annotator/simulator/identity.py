"""Who is who: how the simulated model maps cast members to the profile ids the engine gave it.

This is what exercises the engine's Character Profile Manager, so it plays two imperfections on purpose:

* **Lazy naming.** A member whose name has not been said yet (`named_at` after the window) is "Unnamed" with an
  `unknown_NNN` id. When a later window recognises him (by looks) as a known unnamed profile and his name is
  known by then, the answer keeps the unknown id and adds a `name_updates` entry whose evidence is the
  dialogue line that says the name.
* **Re-introduction after a costume change.** A known member seen in the window in a look that no profile
  records (while an older look of hers is recorded: she changed clothes since, or during, what the memory
  knows) is *not* recognised at all, not even by name: she gets a new id, `char_NNN` with her name when the
  name is spoken in the window (the CPM must merge her by name), `unknown_NNN` otherwise. Once a profile
  records the new look, she is recognised again.

Otherwise a member is recognised by name (a named profile whose name or aliases meet the member's, once the
film has said the name), then by looks (the current appearance text equals a profile's appearance or is in
its appearance_history). New ids are numbered after the highest number among the known ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotator.schemas.plot import is_unnamed
from annotator.simulator.screenplay import CastMember
from annotator.simulator.window import Window

UNNAMED = "Unnamed"
_CODE = re.compile(r"^(char|unknown)_(\d+)$")


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


@dataclass
class NameUpdate:
    unknown_id: str
    name: str
    evidence: str


@dataclass
class Identity:
    member: CastMember
    id: str
    name: str
    look: str  # appearance at the member's first event in the window
    profile: dict | None = None  # the known profile it was recognised as
    confidence: str | None = None
    reason: str | None = None
    new_look: str | None = None  # appearance to report in new_info (changed since the profile)
    new_aliases: list[str] | None = None
    name_update: NameUpdate | None = None
    reintroduced: bool = False  # known before, not recognised because of a costume change

    @property
    def is_new(self) -> bool:
        return self.profile is None


class Profiles:
    """The known profiles of a prompt, indexed for matching."""

    def __init__(self, profiles: list[dict]) -> None:
        self.items = profiles

    @staticmethod
    def names(profile: dict) -> set[str]:
        name = profile.get("name")
        names = set() if is_unnamed(name) else {_norm(name)}
        return names | {_norm(a) for a in profile.get("aliases") or [] if isinstance(a, str) and a.strip()}

    @staticmethod
    def looks(profile: dict) -> list[str]:
        history = [h for h in profile.get("appearance_history") or [] if isinstance(h, str)]
        return [_norm(profile.get("appearance")), *(_norm(h) for h in history)]

    def by_name(self, member: CastMember, *, prefer_look: str | None = None) -> dict | None:
        wanted = {_norm(member.name), *(_norm(a) for a in member.aliases)}
        hits = [p for p in self.items if self.names(p) & wanted]
        if prefer_look is not None:
            hits.sort(key=lambda p: _norm(prefer_look) not in self.looks(p))
        return hits[0] if hits else None

    def by_look(self, look: str) -> tuple[dict, bool] | None:
        """(profile, exact) where exact means the look is the profile's current appearance."""
        for profile in self.items:
            looks = self.looks(profile)
            if _norm(look) == looks[0]:
                return profile, True
        for profile in self.items:
            if _norm(look) in self.looks(profile)[1:]:
                return profile, False
        return None

    def highest_number(self) -> int:
        numbers = [0]
        for profile in self.items:
            for code in [profile.get("id"), *(profile.get("former_codes") or [])]:
                match = _CODE.match(code or "")
                if match:
                    numbers.append(int(match.group(2)))
        return max(numbers)


class _Codes:
    """Hands out new ids: per-prefix from 1 on a cold start, one shared counter after the known ids."""

    def __init__(self, start_after: int | None) -> None:
        self.shared = start_after
        self.per_prefix = {"char": 0, "unknown": 0}

    def next(self, prefix: str) -> str:
        if self.shared is None:
            self.per_prefix[prefix] += 1
            return f"{prefix}_{self.per_prefix[prefix]:03d}"
        self.shared += 1
        return f"{prefix}_{self.shared:03d}"


def _unrecorded_look(member: CastMember, window: Window, profiles: Profiles) -> str | None:
    """The costume-change trap: the look she wears in the window that no profile records, provided an older
    look of hers is recorded (so she is known, but changed clothes since, or during, what memory knows)."""
    worn = list(dict.fromkeys(member.appearance_at(e.timestamp) for e in window.events_of(member)))
    unrecorded = [look for look in worn if profiles.by_look(look) is None]
    if not unrecorded:
        return None
    first_unrecorded = min(
        e.timestamp for e in window.events_of(member) if member.appearance_at(e.timestamp) in unrecorded
    )
    older = [member.appearance] + [c.appearance for c in member.costumes if c.from_s <= first_unrecorded]
    known_before = any(profiles.by_look(o) is not None for o in older if o not in unrecorded)
    return unrecorded[-1] if known_before else None


def plot_identities(window: Window, known: list[dict] | None) -> list[Identity]:
    """Ids for every member in the window. `known=None` is the first segment (cold start)."""
    profiles = Profiles(known or [])
    codes = _Codes(None if known is None else profiles.highest_number())
    used: set[str] = set()
    result: list[Identity] = []
    for member in window.members:
        look = member.appearance_at(window.first_time(member))
        named = window.named(member)
        profile, confidence, reason = None, None, None
        reintroduced = False
        if known:
            changed_look = _unrecorded_look(member, window, profiles)
            reintroduced = changed_look is not None
            if reintroduced:
                look = changed_look
            else:
                hit = profiles.by_name(member, prefer_look=look) if named else None
                if hit is not None and hit["id"] not in used:
                    profile, confidence = hit, "high"
                    reason = f"same name as the known character: {member.name}"
                else:
                    found = profiles.by_look(look)
                    if found is not None and found[0]["id"] not in used:
                        profile, exact = found
                        confidence = "high" if exact else "medium"
                        reason = (
                            "same build, face and clothes as before"
                            if exact
                            else "matches an earlier description of this character"
                        )
        if profile is not None:
            used.add(profile["id"])
            profile_named = not is_unnamed(profile.get("name"))
            name = member.name if named else (profile["name"] if profile_named else UNNAMED)
            identity = Identity(member, profile["id"], name, look, profile, confidence, reason)
            if _norm(look) != _norm(profile.get("appearance")):
                identity.new_look = look
            if named:
                have = Profiles.names(profile)
                identity.new_aliases = [a for a in member.aliases if _norm(a) not in have] or None
                if not profile_named:
                    identity.name_update = NameUpdate(
                        profile["id"], member.name, window.naming_evidence(member)
                    )
        else:
            gets_name = named and (window.name_spoken(member) if reintroduced else True)
            code = codes.next("char" if gets_name else "unknown")
            identity = Identity(
                member, code, member.name if gets_name else UNNAMED, look, reintroduced=reintroduced
            )
        result.append(identity)
    return result


def script_id(window: Window, member: CastMember, profiles: Profiles) -> str:
    """The profile id a script answer uses for `member`: by name if a profile is named after him, else by
    looks (any look he has had up to the window's end); with no profile to match, his name or "Unnamed"."""
    looks = window.looks_until_end(member)
    current = member.appearance_at(window.first_time(member)) if window.events_of(member) else looks[0]
    hit = profiles.by_name(member, prefer_look=current)
    if hit is not None:
        return hit["id"]
    for look in [current, *looks]:
        found = profiles.by_look(look)
        if found is not None:
            return found[0]["id"]
    return member.name if window.named(member) else UNNAMED
