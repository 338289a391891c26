"""Naming as an upgrade path (see `_Namer`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from profiles_db.cpm.identity import (
    IdentityRules,
    better_form,
    forms_conflict,
    is_proper,
    name_info,
    same_norm,
)
from profiles_db.cpm.state import ScopeState
from profiles_db.models import (
    NameEvent,
)
from profiles_db.normalize import (
    check_text,
    normalize_name,
)


class _Namer:
    """Naming as an upgrade path: an unnamed record or one known only by a descriptor takes a proper name
    (and a char_ code), and a named one moves on to a more complete form of its name; every change is a name
    event with its evidence line, every earlier name stays an alias, and the old code keeps resolving."""

    def __init__(self, s: Session, st: ScopeState, segment_id: int | None, warnings: list[str]) -> None:
        self.s, self.st, self.segment_id, self.warnings = s, st, segment_id, warnings
        self.rules = IdentityRules(st)
        self.reserved: set[str] = set()
        self.named: list[int] = []
        self.merges: list[Any] = []
        self.hints: dict[int, str] = {}  # record → why its name changed, quoted in merge reasons

    def name(self, cid: int, name: str, evidence: str, *, force: bool = False) -> None:
        st, c, rules = self.st, self.st.chars[cid], self.rules
        if same_norm(c.name, name) and (force or c.status == "named" or not is_proper(name)):
            return  # already so named (a re-apply, or the model repeating itself)
        evidence = check_text(evidence, f"naming {c.code}", self.warnings) or ""
        if force:
            self._rename(cid, name, evidence)
            return
        norm = normalize_name(name)
        if not is_proper(name):  # a descriptor, relative term or group label is a name only for the nameless
            if c.name:
                self.learn_alias(cid, name)
            else:
                self._rename(cid, name, evidence)
            return
        owners = rules.owners(norm, exclude=cid)
        mergeable = [o for o in owners if rules.block(o, cid, norm) is None]
        if c.status != "named":  # provisional: an unknown_ code, or a record known by a descriptor
            earlier = [o for o in mergeable if st.chars[o].status == "named" and o < cid]
            if earlier:  # named after an earlier character: it IS that one (code kept, the merge redirects)
                into = earlier[0]
                self.hints[cid] = f"lazy naming: {c.code} is {name!r}"
                self._rename(cid, name, evidence, recode=False)
                reason = f"{self.hints[cid]}, the name of {st.chars[into].code}"
                self.merges.append(st.merge(cid, into, reason, self.segment_id))
                return
            # The earliest of its name: settle() later folds later same-named records into it.
            self._rename(cid, name, evidence)
            return
        if owners and not mergeable:
            self.warnings.append(
                f"{c.code} ({c.name!r}) reported as {name!r}, the name of {st.chars[owners[0]].code}, "
                f"who {rules.block(owners[0], cid, norm)}: ignored (possible id mix-up)"
            )
            return
        if better_form(c.name, name):
            self._rename(cid, name, evidence)
        elif c.name and forms_conflict(name_info(c.name), name_info(name)):
            self.warnings.append(
                f"{c.code} ({c.name!r}) reported as {name!r}, which contradicts its name: ignored "
                "(possible id mix-up)"
            )
        else:
            self.learn_alias(cid, name)

    def learn_alias(self, cid: int, alias: str) -> bool:
        """Add an alias, unless it is a proper form of someone this record cannot be (then it would be a
        false merge key): "Tom" said to Tom Berg while Tom Hale has it already."""
        st, norm = self.st, normalize_name(alias)
        if is_proper(alias):
            for other in self.rules.owners(norm, exclude=cid):
                why = self.rules.block(other, cid, norm)
                if why is not None:
                    self.warnings.append(
                        f"alias {alias!r} of {st.chars[cid].code} is {st.chars[other].code}'s too, but {why}; "
                        "not stored"
                    )
                    return False
        return st.add_alias(cid, alias, self.segment_id)

    def _rename(self, cid: int, name: str, evidence: str, *, recode: bool = True) -> None:
        st, c = self.st, self.st.chars[cid]
        old_code, old_name, was_named = c.code, c.name, c.status == "named"
        if old_name:
            st.add_alias(cid, old_name, self.segment_id)  # every name it was known by stays findable
        new_code = None
        proper = is_proper(name)
        if proper and recode and c.code.startswith("unknown_"):
            new_code = st.allocate("char", self.reserved)
            st.recode(cid, new_code)
        c.name, c.status = name, "named" if proper else "provisional"
        st.add_alias(cid, name, self.segment_id)
        self.s.add(self._event(cid, old_code, new_code, old_name, name, evidence))
        if proper and not was_named:
            self.named.append(cid)
            self.hints.setdefault(cid, f"lazy naming: {old_code} is {name!r}")
        elif proper:
            self.hints.setdefault(cid, f"{old_code} renamed {old_name!r} → {name!r}")

    def _event(self, cid, old_code, new_code, old_name, new_name, evidence) -> NameEvent:
        return NameEvent(
            character_id=cid,
            segment_id=self.segment_id,
            old_code=old_code,
            new_code=new_code,
            old_name=old_name,
            new_name=new_name,
            evidence=evidence,
        )
