"""The Character Profile Manager (DESIGN.md §5): memory of who is who across the segments of a scope.

The package, one job per module: `manager` (the public class: reads, apply, corrections, the locked
transaction and its retry), `reads` (profiles, context in budget, previous summary), `apply` (one answer
folded in: its entries and name updates, then the steps below), `observations` (what a segment saw of each
character), `proposals` (same-person proposals decided and kept), `relationships` (an answer's relationships,
and when two are one), `segment_plot` (the code map and the stored plot), `naming` (names as an upgrade
path), `identity` (who may be the same person, and settle), `state` (a scope's records in memory:
redirects, codes, aliases), `merges` (merge/unmerge writes), `order` (the memory order of a scope),
`results` (what an apply reports).

Workers call `context()` before plot reasoning of a segment and `apply()` with the parsed answer after it;
users correct mistakes with `rename()`, `merge()` and `unmerge()`. Every write runs in ONE transaction
holding the scope's lock (SQLite: BEGIN IMMEDIATE from db.py; PostgreSQL: an advisory lock on the scope),
so concurrent writers of one scope queue and writers of different scopes do not wait on each other (on
PostgreSQL). The unique (scope, code) constraint is the backstop: a violation retries the whole apply.

Decisions (docs/sql.md repeats them for SQL users):
- Identity of an answer entry, first match wins: the code this entry's id was mapped to when the same
  segment was applied before (re-apply), a known `matched_from`, a known `id`; else a new character. "Known"
  means any code ever issued in the scope, resolved through renames and merges. An unknown `matched_from`
  makes the entry new, with a warning.
- Codes: a new character keeps the model's proposed id when it is a well-formed code of the right kind
  (char_ for named, unknown_ for unnamed) never issued in the scope; otherwise the next free number is issued
  (never reusing a code, nor one another entry of the same answer proposed). code_map records the mapping.
- Idempotency: applying a segment again is additive and deduplicated: the same answer changes nothing
  (same characters, aliases, observations, relationships; the segment_plots row is rewritten identically);
  a different answer for the same segment adds what is new and replaces the segment_plots row.
- Order within a scope: video episode (NULL first), video creation time, video id, segment idx.
- Merges keep the named record, else the earlier one; a merge undone by hand is never redone automatically.
"""

from profiles_db.cpm.manager import CharacterProfileManager
from profiles_db.cpm.results import ApplyReport, ChainOrderError

__all__ = ["ApplyReport", "ChainOrderError", "CharacterProfileManager"]
