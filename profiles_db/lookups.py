"""Read-only questions the CLI, the reports and the review site ask of the job database, answered here so
that SQL stays in profiles_db (an import contract says so): the SQL views' rows (docs/sql.md), scopes of
videos, canonical characters, and where each look of a character was first seen."""

from __future__ import annotations

import json

from sqlalchemy import func, select, text

from profiles_db.db import Database
from profiles_db.models import Character, Segment, Video

# The views' JSON arrays: PostgreSQL's jsonb arrives as lists, SQLite's json_group_array as JSON text.
JSON_COLUMNS = ("aliases", "former_codes", "appearance_history")
VIEWS = frozenset({"v_character_profiles", "v_relationships", "v_character_redirects"})


def view_rows(db: Database, view: str, scope: str | None, order: str) -> list[dict]:
    """The rows of one of the SQL views, of one scope or all, its JSON arrays as lists. `view` and `order`
    come from the code, never from a user (the names are checked)."""
    if view not in VIEWS or not all(part.strip().isidentifier() for part in order.split(",")):
        raise ValueError(f"not a view query: {view} ORDER BY {order}")
    where = " WHERE scope = :scope" if scope else ""
    with db.engine.connect() as conn:
        result = conn.execute(
            text(f"SELECT * FROM {view}{where} ORDER BY {order}"), {"scope": scope} if scope else {}
        )
        rows = [dict(row._mapping) for row in result]
    for row in rows:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


def canonical_characters(db: Database) -> int:
    """Characters not merged into another (every scope)."""
    with db.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(Character).where(Character.merged_into.is_(None))) or 0
        )


def video_scopes(db: Database) -> dict[str, str]:
    """Every video's scope (its series, or itself), by video id."""
    with db.sessions() as s:
        return {video_id: scope for video_id, scope in s.execute(select(Video.id, Video.scope))}


def is_merged(db: Database, scope: str, code: str) -> bool:
    """Whether the character `code` of `scope` was merged into another."""
    with db.sessions() as s:
        row = s.scalars(select(Character).where(Character.scope == scope, Character.code == code)).first()
    return row is not None and row.merged_into is not None


def segment_id(db: Database, video_id: str, index: int) -> int | None:
    with db.sessions() as s:
        return s.scalar(select(Segment.id).where(Segment.video_id == video_id, Segment.idx == index))


FIRST_SEEN = """
SELECT r.canonical_id, o.appearance, v.id, s.idx
FROM character_observations o
JOIN v_character_redirects r ON r.character_id = o.character_id AND r.kind = 'current'
JOIN segments s ON s.id = o.segment_id
JOIN videos v ON v.id = s.video_id
WHERE o.appearance IS NOT NULL AND o.appearance <> ''
ORDER BY v.episode, v.created_at, v.id, s.idx
"""


def first_seen(db: Database) -> dict[tuple[int, str], tuple[str, int]]:
    """(canonical character id, appearance) → the first (video id, segment index) it was observed in."""
    found: dict[tuple[int, str], tuple[str, int]] = {}
    with db.engine.connect() as conn:
        for cid, look, video_id, idx in conn.execute(text(FIRST_SEEN)):
            found.setdefault((cid, look), (video_id, idx))
    return found
