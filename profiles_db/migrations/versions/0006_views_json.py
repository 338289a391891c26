"""views pleasant to query: JSON arrays, rounded costs, timestamps with their time zone

Revision ID: 0006_views_json
Revises: 0005_identity_proposals
Create Date: 2026-12-04 09:00:00

`v_character_profiles` gives `aliases`, `former_codes` and `appearance_history` as JSON arrays instead of
joined strings (a name may hold the separator): `json_group_array` on SQLite (JSON text; read it with
json_each), `jsonb_agg` on PostgreSQL (jsonb; jsonb_array_elements_text). An empty list is `[]`, never NULL.
`v_job_progress` rounds `cost_usd` to micro-dollars (numeric on PostgreSQL, so it adds up exactly) and gains
`updated_at`, the stage's last change. Timestamps the views expose are timestamptz on PostgreSQL and ISO-8601
text with an explicit `+00:00` on SQLite (which stores them as naive UTC).

Views only (no batch rebuild), so no table is touched. `v_character_redirects` and `v_relationships` (no
array, cost nor timestamp in it) stay as 0002 made them.
"""

import importlib
from collections.abc import Sequence

from alembic import op

revision: str = "0006_views_json"
down_revision: str | Sequence[str] | None = "0005_identity_proposals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPLACED = ("v_job_progress", "v_character_profiles")
COST_DECIMALS = 6  # a millionth of a dollar: totals to the cent and beyond, without float noise


def _array(dialect: str, expr: str, order: str) -> str:
    """An ordered JSON array aggregate, `[]` over no rows. SQLite keeps the order of an ordered subquery
    (as 0002 relies on; its ORDER BY inside aggregates needs 3.44, newer than many sqlite3 shells)."""
    if dialect == "postgresql":
        return f"COALESCE(jsonb_agg({expr} ORDER BY {order}), '[]'::jsonb)"
    return f"json_group_array({expr})"


def _timestamp(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return expr  # the columns are timestamptz already
    return f"CASE WHEN {expr} IS NULL THEN NULL ELSE replace({expr}, ' ', 'T') || '+00:00' END"


def _cost(dialect: str, expr: str) -> str:
    if dialect == "postgresql":  # round(double precision, int) does not exist there
        return f"ROUND(CAST({expr} AS numeric), {COST_DECIMALS})"
    return f"ROUND({expr}, {COST_DECIMALS})"


def _profiles(d: str) -> str:
    aliases = _array(d, "a.alias", "a.id")
    history = _array(d, "o.appearance", "o.k1, o.k2, o.k3, o.k4, o.k5, o.id")
    former = _array(d, "r.code", "r.code")
    # Observations in story order (the order the CPM uses: episode NULL first, video creation, video, idx).
    return f"""
CREATE VIEW v_character_profiles AS
SELECT c.scope AS scope,
       c.id AS character_id,
       c.code AS code,
       c.name AS name,
       c.status AS status,
       c.role_type AS role_type,
       c.appearance AS appearance,
       c.voice AS voice,
       c.personality AS personality,
       (SELECT {aliases} FROM (
            SELECT a.id, a.alias FROM character_aliases a
            JOIN v_character_redirects r ON r.character_id = a.character_id AND r.kind = 'current'
            WHERE r.canonical_id = c.id ORDER BY a.id) a) AS aliases,
       (SELECT {history} FROM (
            SELECT o.id, o.appearance,
                   CASE WHEN v.episode IS NULL THEN 0 ELSE 1 END AS k1, v.episode AS k2,
                   v.created_at AS k3, v.id AS k4, s.idx AS k5
            FROM character_observations o
            JOIN v_character_redirects r ON r.character_id = o.character_id AND r.kind = 'current'
            LEFT JOIN segments s ON s.id = o.segment_id
            LEFT JOIN videos v ON v.id = s.video_id
            WHERE r.canonical_id = c.id AND o.appearance IS NOT NULL AND o.appearance <> ''
            ORDER BY k1, k2, k3, k4, k5, o.id) o) AS appearance_history,
       (SELECT count(DISTINCT o.segment_id) FROM character_observations o
            JOIN v_character_redirects r ON r.character_id = o.character_id AND r.kind = 'current'
            WHERE r.canonical_id = c.id) AS appearances,
       fs.video_id AS first_seen_video_id,
       fs.idx AS first_seen_idx,
       ls.video_id AS last_seen_video_id,
       ls.idx AS last_seen_idx,
       (SELECT {former} FROM (
            SELECT r.code FROM v_character_redirects r
            WHERE r.canonical_id = c.id AND r.code <> c.code ORDER BY r.code) r) AS former_codes,
       {_timestamp(d, "c.created_at")} AS created_at
FROM characters c
LEFT JOIN segments fs ON fs.id = c.first_seen_segment_id
LEFT JOIN segments ls ON ls.id = c.last_seen_segment_id
WHERE c.merged_into IS NULL
"""


def _job_progress(d: str) -> str:
    def count(status: str) -> str:
        return f"SUM(CASE WHEN sr.status = '{status}' THEN 1 ELSE 0 END) AS {status}"

    statuses = ",\n       ".join(count(s) for s in ("pending", "running", "done", "failed", "rejected"))
    return f"""
CREATE VIEW v_job_progress AS
SELECT COALESCE(sr.job_id, v.job_id) AS job_id,
       sr.stage AS stage,
       COUNT(*) AS total,
       {statuses},
       SUM(sr.attempts) AS attempts,
       SUM(sr.input_tokens) AS input_tokens,
       SUM(sr.output_tokens) AS output_tokens,
       {_cost(d, "SUM(sr.cost_usd)")} AS cost_usd,
       {_timestamp(d, "MAX(sr.updated_at)")} AS updated_at
FROM stage_runs sr
JOIN segments s ON s.id = sr.segment_id
JOIN videos v ON v.id = s.video_id
GROUP BY COALESCE(sr.job_id, v.job_id), sr.stage
"""


def _previous():
    # the views as 0002 made them, for the downgrade (a module name that starts with a digit: imported by name)
    return importlib.import_module("profiles_db.migrations.versions.0002_views")


def _drop() -> None:
    for view in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop()
    op.execute(_profiles(dialect))
    op.execute(_job_progress(dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    previous = _previous()
    _drop()
    op.execute(previous._profiles(dialect))
    op.execute(previous._job_progress())
