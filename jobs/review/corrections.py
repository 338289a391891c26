"""A review's corrections into the database: the corrected segments as ground truth, the cast corrections
through the Character Profile Manager with the reviewer as their evidence.

Ground truth first, in one transaction (an unknown segment fails it whole, naming the segment); then each cast
correction in its own CPM transaction. Importing the same export twice changes nothing: a stored review of a
segment is replaced by the same one, and a rename to the name a character already has, a merge of two records
that are one already, a split of a record that is separate are left out (and reported).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from jobs.review.ls_import import CastCorrection, Review
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.ground_truth import StoreReport, store
from profiles_db.lookups import is_merged, segment_id


class ApplySummary(BaseModel):
    ground_truth: StoreReport
    applied: list[str] = Field(default_factory=list)  # one line per cast correction carried out
    unchanged: list[str] = Field(default_factory=list)  # cast corrections that were already so
    unreviewed: list[str] = Field(default_factory=list)


def apply_review(db: Database, review: Review) -> ApplySummary:
    summary = ApplySummary(ground_truth=store(db, review.segments), unreviewed=review.unreviewed)
    manager = CharacterProfileManager(db)
    segment_ids = _segment_ids(db, review)
    for correction in review.cast:
        line = _apply_one(db, manager, correction, segment_ids.get(_task_of(correction.where)))
        (summary.applied if line.startswith("+") else summary.unchanged).append(line[1:])
    return summary


def evidence(correction: CastCorrection) -> str:
    return f"review by {correction.reviewer} ({correction.where})"


def _apply_one(
    db: Database, manager: CharacterProfileManager, c: CastCorrection, segment_id: int | None
) -> str:
    """'+what was done' or '=why nothing was'; a correction naming an unknown code fails with its place."""
    profile = manager.resolve(c.scope, c.code)
    if profile is None:
        raise ValueError(f"{c.where}: {c.code!r} is not a character code of scope {c.scope!r}")
    if c.op == "rename":
        assert c.target is not None
        if profile.name == c.target:
            return f"={c.code} is already named {c.target!r}"
        renamed = manager.rename(c.scope, c.code, c.target, evidence=evidence(c), segment_id=segment_id)
        return f"+renamed {c.code} to {renamed.display_name!r} ({renamed.id})"
    if c.op == "merge":
        assert c.target is not None
        into = manager.resolve(c.scope, c.target)
        if into is None:
            raise ValueError(f"{c.where}: {c.target!r} is not a character code of scope {c.scope!r}")
        if into.id == profile.id:
            return f"={c.code} and {c.target} are one character already ({profile.id})"
        merged = manager.merge(c.scope, c.code, c.target, reason=evidence(c))
        return f"+merged {c.code} into {merged.id} {merged.display_name!r}"
    if not is_merged(db, c.scope, c.code):
        return f"={c.code} is not merged into another character: nothing to split"
    split = manager.unmerge(c.scope, c.code, reason=evidence(c))
    return f"+split {c.code} off: {split.id} {split.display_name!r}"


def _task_of(where: str) -> str:
    """'SOURCE task N' of 'SOURCE task N region R' or 'SOURCE task N cast line M'."""
    found = re.match(r"^(.* task \S+?)(?: region | cast line |$)", where)
    return found.group(1) if found else where


def _segment_ids(db: Database, review: Review) -> dict[str, int]:
    """The segment id of each reviewed task (by its place: 'SOURCE task N'), for the name events' segment."""
    found: dict[str, int] = {}
    for seg in review.segments:
        segment = segment_id(db, seg.video_id, seg.segment_index)
        if segment is not None:
            found[seg.source_ref.rsplit(" annotation ", 1)[0]] = segment
    return found
