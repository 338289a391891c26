"""Who may be the same person: the CPM's identity rules over one scope (DESIGN.md §5, docs/sql.md).

Names are classified once, by the project's one classifier (`annotator.schemas.names`):
- proper names ("Sal Moreno", "Kate", "Dr. Osei") and their forms are the only *merge keys*: two canonical
  records sharing one (after normalisation) are one person, the later folded into the earlier;
- relative terms ("Mom", "Sir", "Officer") and descriptors ("Driver", "the man in the cap") never merge two
  records by themselves: two mothers may both be "Mom";
- groups ("the dock guards") are their own kind of record and never merge with an individual.
A shared key does not merge two records whose names contradict each other (different family names, or
different given names of two full names), nor when the key is a short form ("Tom", "Mr. Moreno") that a third
character's name also fits: such a form is ambiguous, not a proof. A merge a human undid is never redone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from functools import lru_cache

from annotator.schemas.names import NameInfo, analyse_name
from profiles_db.cpm.state import ScopeState
from profiles_db.models import Merge
from profiles_db.normalize import normalize_name


@lru_cache(maxsize=4096)
def name_info(name: str) -> NameInfo:
    """The class and form of a name as a model wrote it; an all-lower-case answer ("bob.", "sal moreno") is
    read as if capitalised, since a model's `name` field is a name, not running text."""
    if name.islower():
        return replace(analyse_name(name.title()), name=name)
    return analyse_name(name)


def is_proper(name: str | None) -> bool:
    return bool(name) and name_info(name).cls == "proper"


def is_group(name: str | None) -> bool:
    return bool(name) and name_info(name).cls == "group"


def forms_conflict(a: NameInfo, b: NameInfo) -> bool:
    """Two proper forms that cannot name one person: different family names, or two full names whose given
    names differ ("Tom Hale" / "Tom Berg", "Ana Moreno" / "Sal Moreno")."""
    if a.surname and b.surname and a.surname != b.surname:
        return True
    if a.completeness == 3 and b.completeness == 3:
        return a.words[0].casefold() != b.words[0].casefold()
    return False


class IdentityRules:
    """The rules above, read off a `ScopeState` (aliases, names, undone merges) at the moment of asking."""

    def __init__(self, st: ScopeState) -> None:
        self.st = st

    # -- what a record is called -----------------------------------------------------------------------
    def proper_forms(self, cid: int) -> dict[str, NameInfo]:
        """Normalised proper name/aliases of canonical `cid` → their form."""
        return {
            norm: name_info(alias.alias)
            for norm, alias in self.st.aliases.get(cid, {}).items()
            if is_proper(alias.alias)
        }

    def kind(self, cid: int) -> str:
        return "group" if is_group(self.st.chars[cid].name) else "individual"

    def _surnames(self, forms: dict[str, NameInfo]) -> set[str]:
        return {f.surname for f in forms.values() if f.surname}

    def _givens(self, forms: dict[str, NameInfo]) -> set[str]:
        return {f.words[0].casefold() for f in forms.values() if f.completeness == 3}

    # -- may two records be one ------------------------------------------------------------------------
    def conflict(self, x: int, y: int) -> str | None:
        """Why canonical x and y cannot be one person by their names, or None."""
        if self.kind(x) != self.kind(y):
            return "one is a group and the other an individual"
        fx, fy = self.proper_forms(x), self.proper_forms(y)
        sx, sy = self._surnames(fx), self._surnames(fy)
        if sx and sy and not sx & sy:
            return f"different family names ({', '.join(sorted(sx))} / {', '.join(sorted(sy))})"
        gx, gy = self._givens(fx), self._givens(fy)
        if gx and gy and not gx & gy:
            return f"different given names ({', '.join(sorted(gx))} / {', '.join(sorted(gy))})"
        return None

    def ambiguous(self, norm: str, pair: tuple[int, int]) -> str | None:
        """Why the short form `norm` does not single out one person: a third character's name fits it too."""
        form = name_info(self._shown(pair, norm))
        if form.completeness >= 3:
            return None
        for z in self.st.canonical_ids():
            if z in pair:
                continue
            forms = self.proper_forms(z)
            if form.is_title_form and form.surname and form.surname in self._surnames(forms):
                return f"{self.st.chars[z].code} has the family name {form.surname!r} too"
            if not form.title and form.words:
                word = form.words[0].casefold()
                if any(word in (w.casefold() for w in f.words) for f in forms.values()):
                    return f"{self.st.chars[z].code}'s name has {form.words[0]!r} in it too"
        return None

    def block(self, x: int, y: int, norm: str | None = None) -> str | None:
        """Why canonical x and y must not be merged (on the key `norm`, if given), or None."""
        if self.st.exempt(x, y):
            return "a merge between them was undone by hand"
        reason = self.conflict(x, y)
        if reason is None and norm is not None:
            reason = self.ambiguous(norm, (x, y))
        return reason

    def owners(self, norm: str, exclude: int) -> list[int]:
        """Other canonical records holding `norm` as a proper name or alias, in survivor order."""
        return [o for o in self.st.owners(norm, exclude=exclude) if is_proper(self.st.aliases[o][norm].alias)]

    def _shown(self, pair: tuple[int, int], norm: str) -> str:
        for cid in pair:
            alias = self.st.aliases.get(cid, {}).get(norm)
            if alias is not None:
                return alias.alias
        return norm

    # -- merging on shared keys --------------------------------------------------------------------------
    def settle(
        self, segment_id: int | None, warnings: list[str], hints: dict[int, str] | None = None
    ) -> list[Merge]:
        """Merge canonical characters that share a proper name or alias (the later into the earlier), unless
        a rule above keeps them apart. `hints` (record → why its name just changed) prefix merge reasons."""
        st, hints = self.st, hints or {}
        merges: list[Merge] = []
        told: set[tuple[int, int]] = set()
        for _ in range(len(st.chars) + 1):
            merged = False
            by_norm: dict[str, list[int]] = defaultdict(list)
            for cid in st.canonical_ids():
                for norm in self.proper_forms(cid):
                    by_norm[norm].append(cid)
            for norm in sorted(by_norm):
                group = sorted(by_norm[norm], key=st.preference)
                # every pair not kept apart, the later into the earlier (a pair kept apart does not stop a
                # third character from joining one of them)
                for i, survivor in enumerate(group):
                    for other in group[i + 1 :]:
                        why = self.block(survivor, other, norm)
                        if why is not None:
                            if (survivor, other) not in told:
                                told.add((survivor, other))
                                warnings.append(
                                    f"{st.chars[other].code} and {st.chars[survivor].code} share the name "
                                    f"{norm!r} but {why}; kept apart"
                                )
                            continue
                        shown = st.aliases[other][norm].alias
                        reason = f"same name or alias {shown!r} (normalised {norm!r})"
                        hint = hints.get(other) or hints.get(survivor)
                        if hint:
                            reason = f"{hint}: {reason}"
                        merges.append(st.merge(other, survivor, reason, segment_id))
                        merged = True
                        break
                    if merged:
                        break
                if merged:
                    break
            if not merged:
                break
        return merges


def better_form(current: str | None, new: str) -> bool:
    """Is `new` a better canonical name than `current`: a proper name over none or a non-proper one, else a
    more complete proper form that does not contradict it (given + family > title + family > one name)."""
    info = name_info(new)
    if info.cls != "proper":
        return False
    if not current or not is_proper(current):
        return True
    old = name_info(current)
    return not forms_conflict(old, info) and info.rank() > old.rank()


def same_norm(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and normalize_name(a) == normalize_name(b)
