"""Who is who: how the simulated model maps cast members to the profile ids the engine gave it.

This is what exercises the engine's Character Profile Manager, so it plays the identity patterns real models
produce, on purpose and deterministically (the screenplay fields are in docs/screenplay.md):

* **Lazy naming.** A member whose name has not been said yet (`named_at` after the window) is "Unnamed" with an
  `unknown_NNN` id. When a later window recognises him (by looks) as a known unnamed profile and his name is
  known by then, the answer keeps the unknown id and adds a `name_updates` entry whose evidence is the
  dialogue line that says the name.
* **Descriptor first.** A member with a `descriptor` ("Driver") is reported under it, as if it were his name,
  with a `char_NNN` id until the name is said. The window that says the name recognises him under that same
  id, reports the proper name with the descriptor among the aliases, and adds a `name_updates` entry for the id.
* **Name forms.** A member with `name_forms` is reported under the form said last by the window's end ("Dr.
  Osei", then "Kate", then the full name), earlier forms among the aliases; he is recognised by any form heard.
* **Groups.** A `group` member ("the dock guards") is reported under its label from the start and recognised by
  it. A group and an individual are never taken for one another.
* **Re-introduction after a costume change.** A known member seen in the window in a look that no profile
  records (while an older look of hers is recorded: she changed clothes since, or during, what the memory
  knows) is *not* recognised at all, not even by name: she gets a new id, `char_NNN` with her name when the
  name is spoken in the window (the CPM must merge her by name), `unknown_NNN` otherwise. Once a profile
  records the new look, she is recognised again.
* **Same person, two profiles.** When a later window finds two known profiles that are both the member (by a
  name heard, or by any look she has had up to then), for example after an unspoken re-introduction, she is
  reported under the earlier profile's id and the answer proposes the other as `same_as` it.

Otherwise a member is recognised by name (a profile whose name or aliases meet a name the film has said for
the member by the end of the window), then by looks (the current appearance text equals a profile's appearance
or is in its appearance_history). Names another cast member shares ("Mom", "Tom") identify nobody. New ids are
numbered after the highest number among the known ids. Every entry whose name is news to the memory (a new
named character, or a known one whose profile lacks the reported name) carries `name_evidence`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from annotator.schemas.plot import is_unnamed
from annotator.simulator.screenplay import CastMember, Screenplay, norm_name
from annotator.simulator.window import Window

UNNAMED = "Unnamed"
_CODE = re.compile(r"^(char|unknown)_(\d+)$")


def _norm(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _number(code: str | None) -> int:
    match = _CODE.match(code or "")
    return int(match.group(2)) if match else 10**9


@dataclass
class NameUpdate:
    unknown_id: str
    name: str
    evidence: str


@dataclass
class SameAs:
    id: str
    same_as: str
    confidence: str
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
    aliases: list[str] = field(default_factory=list)
    name_evidence: str | None = None
    same_as: list[SameAs] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.profile is None


class Profiles:
    """The known profiles of a prompt, indexed for matching."""

    def __init__(self, profiles: list[dict], screenplay: Screenplay | None = None) -> None:
        self.items = profiles
        groups = [m for m in screenplay.cast if m.kind == "group"] if screenplay else []
        self._group_names = {norm_name(n) for m in groups for n in m.all_names()}
        self._group_looks = {_norm(look) for m in groups for look in [m.appearance, *_costume_looks(m)]}

    @staticmethod
    def names(profile: dict) -> set[str]:
        name = profile.get("name")
        names = set() if is_unnamed(name) else {norm_name(name)}
        return names | {
            norm_name(a) for a in profile.get("aliases") or [] if isinstance(a, str) and a.strip()
        }

    @staticmethod
    def looks(profile: dict) -> list[str]:
        history = [h for h in profile.get("appearance_history") or [] if isinstance(h, str)]
        return [_norm(profile.get("appearance")), *(_norm(h) for h in history)]

    def is_group(self, profile: dict) -> bool:
        """Does the profile describe one of the screenplay's groups? Read off what the profile is mainly: its
        name when it has one (a group's label), else its current appearance (a group's look); a stray alias or
        an old look in its history does not make an individual's profile a group's, nor the reverse."""
        name = profile.get("name")
        if not is_unnamed(name):
            return norm_name(name) in self._group_names
        return _norm(profile.get("appearance")) in self._group_looks

    def name_hits(self, member: CastMember, names: list[str]) -> list[dict]:
        wanted = {norm_name(n) for n in names if n.strip()}
        return [p for p in self.items if self.names(p) & wanted and self.fits(member, p)]

    def by_look(self, look: str, member: CastMember | None = None) -> tuple[dict, bool] | None:
        """(profile, exact) where exact means the look is the profile's current appearance."""
        items = [p for p in self.items if member is None or self.fits(member, p)]
        for profile in items:
            looks = self.looks(profile)
            if _norm(look) == looks[0]:
                return profile, True
        for profile in items:
            if _norm(look) in self.looks(profile)[1:]:
                return profile, False
        return None

    def look_hits(self, member: CastMember, looks: list[str]) -> list[dict]:
        wanted = {_norm(look) for look in looks}
        return [p for p in self.items if set(self.looks(p)) & wanted and self.fits(member, p)]

    def fits(self, member: CastMember, profile: dict) -> bool:
        """A group is only ever a group's profile, an individual only an individual's."""
        return self.is_group(profile) == (member.kind == "group")

    def highest_number(self) -> int:
        numbers = [0]
        for profile in self.items:
            for code in [profile.get("id"), *(profile.get("former_codes") or [])]:
                match = _CODE.match(code or "")
                if match:
                    numbers.append(int(match.group(2)))
        return max(numbers)


def _costume_looks(member: CastMember) -> list[str]:
    return [c.appearance for c in member.costumes]


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
    unrecorded = [look for look in worn if profiles.by_look(look, member) is None]
    if not unrecorded:
        return None
    first_unrecorded = min(
        e.timestamp for e in window.events_of(member) if member.appearance_at(e.timestamp) in unrecorded
    )
    older = [member.appearance] + [c.appearance for c in member.costumes if c.from_s <= first_unrecorded]
    known_before = any(profiles.by_look(o, member) is not None for o in older if o not in unrecorded)
    return unrecorded[-1] if known_before else None


def _reported_aliases(window: Window, member: CastMember) -> list[str]:
    """The aliases a model reports once the member is named: the descriptor he went by, the forms said before
    the one reported, and his aliases (never a form not said yet, nor the reported name itself)."""
    heard = [name for name, _ in window.heard_names(member)]
    if not heard:
        return []
    unsaid = {norm_name(f.name) for f in member.name_forms} - {norm_name(n) for n in heard}
    if member.named_at is not None and not window.covers_until(member.named_at):
        unsaid.add(norm_name(member.name))
    candidates = [member.descriptor, *heard[:-1], *member.aliases]
    out: list[str] = []
    for alias in candidates:
        key = norm_name(alias)
        if key and key not in unsaid and key != norm_name(heard[-1]) and key not in map(norm_name, out):
            out.append(alias)
    return out


def _proper_named(profile: dict, member: CastMember) -> bool:
    """Does the profile carry a proper name (not "Unnamed", not the member's descriptor)?"""
    name = profile.get("name")
    return not is_unnamed(name) and not (
        member.descriptor and norm_name(name) == norm_name(member.descriptor)
    )


@dataclass
class _Match:
    profile: dict
    confidence: str
    reason: str
    others: list[dict]  # further profiles that are the same member (proposed as same_as)


def _candidates(
    window: Window, member: CastMember, look: str, profiles: Profiles, used: set[str]
) -> _Match | None:
    """The profile the member is recognised as, and any other profile that is also him."""
    free = {p["id"] for p in profiles.items} - used
    names = window.known_names(member)
    name_hits = [p for p in profiles.name_hits(member, names) if p["id"] in free]
    name_hits.sort(key=lambda p: _norm(look) not in profiles.looks(p))
    look_hits = [p for p in profiles.look_hits(member, window.looks_until_end(member)) if p["id"] in free]
    if name_hits:
        primary = name_hits[0]
        confidence, reason = "high", f"same name as the known character: {window.reported_name(member)}"
    else:
        found = profiles.by_look(look, member)
        if found is None or found[0]["id"] not in free:
            return None
        primary, exact = found
        confidence = "high" if exact else "medium"
        reason = (
            "same build, face and clothes as before"
            if exact
            else "matches an earlier description of this character"
        )
    everyone = list({p["id"]: p for p in [primary, *name_hits, *look_hits]}.values())
    if len(everyone) == 1:
        return _Match(primary, confidence, reason, [])
    everyone.sort(key=lambda p: _number(p["id"]))
    chosen, others = everyone[0], everyone[1:]
    if chosen is not primary:
        by_name = chosen in name_hits
        confidence = "high"
        reason = (
            f"same name as the known character: {window.reported_name(member)}"
            if by_name
            else f"same face and build as before, now in {member.look_at(window.first_time(member))}"
        )
    return _Match(chosen, confidence, reason, others)


def plot_identities(window: Window, known: list[dict] | None) -> list[Identity]:
    """Ids for every member in the window. `known=None` is the first segment (cold start)."""
    profiles = Profiles(known or [], window.screenplay)
    codes = _Codes(None if known is None else profiles.highest_number())
    used: set[str] = set()
    result: list[Identity] = []
    for member in window.members:
        look = member.appearance_at(window.first_time(member))
        proper = window.reported_name(member)
        match: _Match | None = None
        reintroduced = False
        if known:
            changed_look = _unrecorded_look(member, window, profiles)
            reintroduced = changed_look is not None
            if reintroduced:
                look = changed_look
            else:
                match = _candidates(window, member, look, profiles, used)
        if match is not None:
            used |= {match.profile["id"], *(p["id"] for p in match.others)}
            result.append(_recognised(window, member, match, look, proper))
        else:
            result.append(_introduced(window, member, look, proper, reintroduced, codes))
    return result


def _recognised(window: Window, member: CastMember, match: _Match, look: str, proper: str | None) -> Identity:
    """A member recognised as a known profile: under its id, with what the window tells that the memory
    lacks (a new look, a name and its evidence, aliases) and the other profiles that are also him."""
    profile = match.profile
    if proper is not None:
        name = proper
    elif _proper_named(profile, member):
        name = profile["name"]  # the memory knows a name the film has not said yet
    else:
        name = member.descriptor or UNNAMED
    identity = Identity(member, profile["id"], name, look, profile, match.confidence, match.reason)
    if _norm(look) != _norm(profile.get("appearance")):
        identity.new_look = look
    if proper is None and name != member.descriptor and not is_unnamed(name):
        identity.aliases = list(member.aliases)
    if proper is not None:
        identity.aliases = _reported_aliases(window, member)
        have = Profiles.names(profile)
        identity.new_aliases = [a for a in identity.aliases if norm_name(a) not in have] or None
        evidence = window.name_evidence(member, proper) or f"known as {proper} from an earlier clip"
        if norm_name(proper) not in have:
            identity.name_evidence = evidence
        if not _proper_named(profile, member):
            identity.name_update = NameUpdate(profile["id"], proper, evidence)
    label = member.look_at(window.first_time(member))
    identity.same_as = [
        SameAs(other["id"], profile["id"], "high", f"same face and build as {profile['id']}, now in {label}")
        for other in match.others
    ]
    return identity


def _introduced(
    window: Window, member: CastMember, look: str, proper: str | None, reintroduced: bool, codes: _Codes
) -> Identity:
    """A member not recognised: a new id, char_ under a name said (for a re-introduced one: said in this
    window) or a descriptor, unknown_ and "Unnamed" otherwise."""
    named = proper is not None and (window.name_spoken(member) if reintroduced else True)
    if named:
        code, name = codes.next("char"), proper
    elif member.descriptor and proper is None:
        code, name = codes.next("char"), member.descriptor
    else:
        code, name = codes.next("unknown"), UNNAMED
    identity = Identity(member, code, name, look, reintroduced=reintroduced)
    if named:
        identity.aliases = _reported_aliases(window, member)
        identity.name_evidence = window.name_evidence(member, proper)
    return identity


def script_id(window: Window, member: CastMember, profiles: Profiles) -> str:
    """The profile id a script answer uses for `member`, found as the plot stage finds him: by a name of his
    (name, aliases, name forms; not one another cast member shares), else by looks (any look he has had up to
    the window's end), else by his descriptor; several profiles that are all him give the earliest (the one a
    plot answer keeps when it proposes the others as the same person). With no profile to match, the name a
    model would report: the form said last, the descriptor, or "Unnamed"."""
    looks = window.looks_until_end(member)
    current = member.appearance_at(window.first_time(member)) if window.events_of(member) else looks[0]
    shared = window.screenplay.shared_names()
    names = [n for n in member.all_names() if norm_name(n) not in shared]
    hits = profiles.name_hits(member, names)
    if not hits:
        found = next((f for f in (profiles.by_look(x, member) for x in [current, *looks]) if f), None)
        hits = [found[0]] if found else []
    if hits:
        others = profiles.look_hits(member, looks) + profiles.name_hits(member, names)
        return min([*hits, *others], key=lambda p: _number(p["id"]))["id"]
    descriptor = norm_name(member.descriptor)
    if descriptor and not any(
        norm_name(m.descriptor) == descriptor for m in window.screenplay.cast if m is not member
    ):
        named = [
            p for p in profiles.items if norm_name(p.get("name")) == descriptor and profiles.fits(member, p)
        ]
        if named:
            return named[0]["id"]
    return window.reported_name(member) or member.descriptor or UNNAMED
