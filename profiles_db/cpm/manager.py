"""The Character Profile Manager's front door: reads, the apply, and the corrections by hand, each write in one transaction holding the scope's lock."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from annotator.schemas import CharacterContext, CharacterProfile, PlotReasoning
from profiles_db.cpm.apply import _Apply
from profiles_db.cpm.identity import (
    IdentityRules,
)
from profiles_db.cpm.naming import _Namer
from profiles_db.cpm.order import _check_chain_order, _position
from profiles_db.cpm.reads import RECENT_SEGMENTS, _fit, _previous_summary, _profiles
from profiles_db.cpm.results import ApplyReport
from profiles_db.cpm.state import ScopeState
from profiles_db.db import Database
from profiles_db.models import (
    NameEvent,
)
from profiles_db.normalize import (
    check_name,
    clean,
    parse_code,
)

log = logging.getLogger(__name__)

_RETRIES = 3
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock (PostgreSQL)


class CharacterProfileManager:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reads -----------------------------------------------------------------------------------
    def context(self, scope: str, segment_id: int, *, token_budget: int = 4000) -> CharacterContext:
        """What the plot prompt of `segment_id` sees: profiles as of before it, the previous summary, in budget."""
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            position = _position(st, segment_id)
            profiles, centrality = _profiles(s, st, before=position)
            summary = _previous_summary(s, st, position)
        ordered = sorted(
            profiles.values(),
            key=lambda p: (
                0 if position - (p.last_seen_segment or 0) <= RECENT_SEGMENTS else 1,
                -centrality[p.id],
                -(p.last_seen_segment or 0),
                p.id,
            ),
        )
        return _fit(
            CharacterContext(scope=scope, segment_index=position, previous_summary=summary),
            ordered,
            token_budget,
        )

    def profiles(self, scope: str) -> list[CharacterProfile]:
        """Canonical characters of the scope, in order of first appearance."""
        with self.db.sessions() as s:
            profiles, _ = _profiles(s, ScopeState(s, scope))
        return sorted(profiles.values(), key=lambda p: (p.first_seen_segment or 1 << 30, p.id))

    def resolve(self, scope: str, code: str) -> CharacterProfile | None:
        """The canonical profile behind any code ever issued in the scope (renamed or merged ones too)."""
        if parse_code(code) is None:
            return None
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            cid = st.lookup(code)
            if cid is None:
                return None
            profiles, _ = _profiles(s, st, only={cid})
        return profiles.get(st.chars[cid].code)

    def resolver(self, scope: str) -> Callable[[str], CharacterProfile | None]:
        """`resolve` for many look-ups at once (e.g. every event of a script): one read, then a snapshot."""
        with self.db.sessions() as s:
            st = ScopeState(s, scope)
            profiles, _ = _profiles(s, st)
        canonical = {code: st.chars[st.canonical(cid)].code for code, cid in st.codes.items()}

        def lookup(code: str) -> CharacterProfile | None:
            parsed = parse_code(code)
            return profiles.get(canonical.get(parsed, "")) if parsed else None

        return lookup

    # -- writes ----------------------------------------------------------------------------------
    def apply(
        self, scope: str, segment_id: int, answer: PlotReasoning, *, enforce_order: bool = True
    ) -> ApplyReport:
        """Fold one segment's plot-reasoning answer into the scope's memory, in one transaction.

        Refused (ChainOrderError) when it is out of the scope's order; `enforce_order=False` is for repairs by
        hand and for tests of the locking itself, never for the pipeline."""

        def run(s: Session, st: ScopeState) -> ApplyReport:
            if enforce_order:
                _check_chain_order(s, st, segment_id)
            return _Apply(s, st, segment_id, answer).run()

        report = self._write(scope, run)
        for warning in report.warnings:
            log.warning("cpm %s segment %s: %s", scope, segment_id, warning)
        return report

    def rename(
        self,
        scope: str,
        code: str,
        name: str,
        *,
        evidence: str = "manual rename",
        segment_id: int | None = None,
    ) -> CharacterProfile:
        """Give a character a (new) name by hand; an unnamed one is upgraded like a name update."""

        def run(s: Session, st: ScopeState) -> str:
            cid = _known(st, code)
            warnings: list[str] = []
            clean_name = check_name(name, f"rename of {code}", warnings)
            if clean_name is None:
                raise ValueError(warnings[0] if warnings else f"{name!r} is not a usable name")
            namer = _Namer(s, st, segment_id, warnings)
            namer.name(cid, clean_name, evidence, force=True)
            namer.rules.settle(segment_id, warnings, namer.hints)
            _log(scope, f"rename {code}", warnings)
            return st.chars[st.canonical(cid)].code

        return self._profile_after(scope, self._write(scope, run))

    def merge(
        self, scope: str, from_code: str, into_code: str, reason: str = "manual merge"
    ) -> CharacterProfile:
        """Fold one character into another by hand (recorded in merges, undone by `unmerge`)."""

        def run(s: Session, st: ScopeState) -> str:
            a, b = _known(st, from_code), _known(st, into_code)
            if a == b:
                raise ValueError(f"{from_code} and {into_code} are already the same character")
            warnings: list[str] = []
            st.merge(a, b, clean(reason) or "manual merge", None)
            IdentityRules(st).settle(None, warnings)  # the union may share a name with a third character
            _log(scope, f"merge {from_code}", warnings)
            return st.chars[st.canonical(b)].code

        return self._profile_after(scope, self._write(scope, run))

    def unmerge(self, scope: str, code: str, *, reason: str | None = None) -> CharacterProfile:
        """Undo the last merge of the record that carries `code`, restoring what it moved; `reason` (who
        split them and why, e.g. a reviewer) is kept on the merge row as `undone_reason`.

        Returns the record's profile; should what it got back be the name of a third character, the usual
        same-name merge applies and the profile is that character's."""

        def run(s: Session, st: ScopeState) -> str:
            rid = st.record(code)
            if rid is None:
                raise ValueError(f"{code!r} is not a code of scope {scope!r}")
            warnings: list[str] = []
            undone = st.unmerge(rid, warnings)
            if undone is not None:
                undone.undone_reason = clean(reason or "manual unmerge") or "manual unmerge"
            record = st.chars[rid]
            if record.status == "named" and record.code.startswith("unknown_"):
                # it was named after the character it joined; on its own again it needs a char_ code
                old_code = st.recode(rid, st.allocate("char"))
                s.add(
                    NameEvent(
                        character_id=rid,
                        old_code=old_code,
                        new_code=record.code,
                        new_name=record.name or "",
                        evidence="named record made separate again by unmerge",
                    )
                )
            # what it had back may be the name or alias of a third character: the usual rule applies
            IdentityRules(st).settle(None, warnings)
            _log(scope, f"unmerge {code}", warnings)
            return st.chars[st.canonical(rid)].code

        return self._profile_after(scope, self._write(scope, run))

    # -- plumbing --------------------------------------------------------------------------------
    def _write(self, scope: str, fn: Callable[[Session, ScopeState], Any]) -> Any:
        for attempt in range(1, _RETRIES + 1):
            try:
                with self._locked(scope) as s:
                    return fn(s, ScopeState(s, scope))
            except (IntegrityError, DBAPIError) as exc:
                retry = isinstance(exc, IntegrityError) or _sqlstate(exc) in _RETRY_SQLSTATES
                if not retry or attempt == _RETRIES:
                    raise
                log.warning("cpm %s: write conflict (%s), retrying (%d)", scope, type(exc).__name__, attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def _locked(self, scope: str) -> Iterator[Session]:
        with self.db.transaction() as s:
            if s.get_bind().dialect.name == "postgresql":
                # Writers of one scope queue here; hashtext collisions only serialise two scopes, harmlessly.
                s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:scope))"), {"scope": scope})
            yield s

    def _profile_after(self, scope: str, code: str) -> CharacterProfile:
        profile = self.resolve(scope, code)
        assert profile is not None, code
        return profile


def _log(scope: str, what: str, warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("cpm %s %s: %s", scope, what, warning)


def _known(st: ScopeState, code: str) -> int:
    cid = st.lookup(code)
    if cid is None:
        raise ValueError(f"{code!r} is not a character code of scope {st.scope!r}")
    return cid


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
