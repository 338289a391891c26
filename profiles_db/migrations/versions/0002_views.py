"""inspection views: character redirects and profiles, relationships, job progress

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00

The views are the SQL face of the CPM (docs/sql.md). They are written once for both dialects; only string
aggregation differs (SQLite group_concat, PostgreSQL string_agg). Redirect chains (`merged_into`) are
followed with a recursive CTE whose depth is capped, so a corrupted cycle cannot hang a query.

Note for later migrations: SQLite "batch" table rebuilds fail while a view names the table; drop these
views first and recreate them (copy the SQL below into the new revision) after the rebuild.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = ("v_job_progress", "v_relationships", "v_character_profiles", "v_character_redirects")


def _agg(dialect: str, expr: str, sep: str, order: str) -> str:
    """An ordered string aggregate. SQLite keeps the order of an ordered subquery; PostgreSQL is told."""
    if dialect == "postgresql":
        return f"string_agg({expr}, '{sep}' ORDER BY {order})"
    return f"group_concat({expr}, '{sep}')"


def _redirects() -> str:
    # Every code ever issued (current codes and codes given up by lazy naming) → its canonical record.
    return """
CREATE VIEW v_character_redirects AS
WITH RECURSIVE chain(start_id, cur_id, depth) AS (
    SELECT id, id, 0 FROM characters
    UNION ALL
    SELECT chain.start_id, c.merged_into, chain.depth + 1
    FROM chain JOIN characters c ON c.id = chain.cur_id
    WHERE c.merged_into IS NOT NULL AND chain.depth < 64
),
canon AS (
    SELECT start_id, cur_id AS canonical_id FROM chain
    WHERE depth = (SELECT max(c2.depth) FROM chain c2 WHERE c2.start_id = chain.start_id)
),
codes AS (
    SELECT id AS character_id, scope, code, 'current' AS kind FROM characters
    UNION ALL
    SELECT ne.character_id, ch.scope, ne.old_code, 'renamed' AS kind
    FROM name_events ne JOIN characters ch ON ch.id = ne.character_id
    WHERE ne.new_code IS NOT NULL AND ne.new_code <> ne.old_code
)
SELECT codes.scope AS scope,
       codes.code AS code,
       codes.kind AS kind,
       codes.character_id AS character_id,
       canon.canonical_id AS canonical_id,
       cc.code AS canonical_code,
       cc.name AS canonical_name
FROM codes
JOIN canon ON canon.start_id = codes.character_id
JOIN characters cc ON cc.id = canon.canonical_id
"""


def _profiles(d: str) -> str:
    aliases = _agg(d, "a.alias", ", ", "a.id")
    history = _agg(d, "o.appearance", " | ", "o.k1, o.k2, o.k3, o.k4, o.k5, o.id")
    former = _agg(d, "r.code", ", ", "r.code")
    # Observations in story order (the order the CPM uses: episode NULL first, video creation, video, idx).
    # SQLite: the ORDER BY inside each subquery fixes group_concat's order; PostgreSQL orders in the aggregate.
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
            WHERE r.canonical_id = c.id AND r.code <> c.code ORDER BY r.code) r) AS former_codes
FROM characters c
LEFT JOIN segments fs ON fs.id = c.first_seen_segment_id
LEFT JOIN segments ls ON ls.id = c.last_seen_segment_id
WHERE c.merged_into IS NULL
"""


def _relationships() -> str:
    return """
CREATE VIEW v_relationships AS
SELECT rel.scope AS scope,
       rel.id AS relationship_id,
       ra.canonical_code AS a_code,
       ra.canonical_name AS a_name,
       rb.canonical_code AS b_code,
       rb.canonical_name AS b_name,
       rel.label AS label,
       rel.evidence AS evidence,
       rel.first_segment_id AS first_segment_id,
       fs.video_id AS first_video_id,
       fs.idx AS first_idx,
       rel.last_segment_id AS last_segment_id,
       ls.video_id AS last_video_id,
       ls.idx AS last_idx
FROM relationships rel
JOIN v_character_redirects ra ON ra.character_id = rel.a_id AND ra.kind = 'current'
JOIN v_character_redirects rb ON rb.character_id = rel.b_id AND rb.kind = 'current'
LEFT JOIN segments fs ON fs.id = rel.first_segment_id
LEFT JOIN segments ls ON ls.id = rel.last_segment_id
"""


def _job_progress() -> str:
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
       SUM(sr.cost_usd) AS cost_usd
FROM stage_runs sr
JOIN segments s ON s.id = sr.segment_id
JOIN videos v ON v.id = s.video_id
GROUP BY COALESCE(sr.job_id, v.job_id), sr.stage
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(_redirects())
    op.execute(_profiles(dialect))
    op.execute(_relationships())
    op.execute(_job_progress())


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
