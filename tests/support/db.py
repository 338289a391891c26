"""Database fixtures: every test that asks for `database` runs on SQLite AND PostgreSQL.

- SQLite: the schema is migrated once per session into a template file; each test gets a copy (fast).
- PostgreSQL (V2S_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test, trust auth):
  a fresh database `v2s_test_<random>` is created per session through an AUTOCOMMIT connection and dropped
  at the end, so parallel runs never collide; each test starts from empty tables (TRUNCATE).
  Unreachable PostgreSQL skips those tests, unless V2S_REQUIRE_POSTGRES=1 (CI), where it fails them.

Loaded by tests/conftest.py (`pytest_plugins = ["tests.support.db"]`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from annotator.schemas import PlotReasoning
from profiles_db.db import Database, sqlite_url, upgrade
from profiles_db.models import Base, Job, Segment, Video

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    return os.environ.get("V2S_TEST_POSTGRES_URL", DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db-template") / "template.sqlite"
    upgrade(sqlite_url(path))
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file so a plain copy is complete
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    admin_url = postgres_admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        admin.dispose()
        message = f"PostgreSQL at {admin_url} unreachable: {type(exc).__name__}"
        if os.environ.get("V2S_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"v2s_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate(db: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def job_database_url(request) -> str | None:
    """A job's database, once each: None for its default (OUT/v2s.sqlite), else the session's PostgreSQL,
    emptied first (other tests' rows would be this job's)."""
    if request.param == "sqlite":
        return None
    url = request.getfixturevalue("postgres_url")
    db = Database(url, auto_upgrade=False)
    _truncate(db)
    db.dispose()
    return url


@pytest.fixture
def sqlite_database(sqlite_template, tmp_path) -> Iterator[Database]:
    path = tmp_path / "v2s.sqlite"
    shutil.copyfile(sqlite_template, path)
    db = Database(sqlite_url(path), auto_upgrade=False)
    yield db
    db.dispose()


@pytest.fixture
def postgres_database(postgres_url) -> Iterator[Database]:
    db = Database(postgres_url, auto_upgrade=False)
    _truncate(db)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request) -> Iterator[Database]:
    """A migrated, empty database: SQLite and PostgreSQL in turn."""
    yield request.getfixturevalue(f"{request.param}_database")


def dialect(db: Database) -> str:
    return db.engine.dialect.name


def make_video(
    db: Database,
    *,
    scope: str,
    video_id: str | None = None,
    segments: int = 3,
    episode: int | None = None,
    job_id: str | None = None,
    segment_s: float = 60.0,
) -> list[int]:
    """A video of `scope` with `segments` segments (and its job, when named); returns the segment ids in order."""
    video_id = video_id or f"vid-{secrets.token_hex(4)}"
    with db.transaction() as s:
        if job_id and s.get(Job, job_id) is None:
            s.add(Job(id=job_id, source="/films", out="/out", config={}, status="running"))
            s.flush()
        s.add(Video(id=video_id, uri=f"/films/{video_id}.mp4", scope=scope, episode=episode, job_id=job_id))
        s.flush()
        rows = [
            Segment(video_id=video_id, idx=i, start_s=(i - 1) * segment_s, end_s=i * segment_s)
            for i in range(1, segments + 1)
        ]
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def plot_answer(
    index: int,
    characters: Sequence[dict] = (),
    *,
    name_updates: Sequence[dict] = (),
    relationships: Sequence[dict] = (),
    same_as: Sequence[dict] = (),
    narrative: str = "",
    events: Sequence[dict] = (),
    continuity_note: str | None = None,
) -> PlotReasoning:
    """A plot-reasoning answer as a model would return it (dicts in the paper's field names)."""
    return PlotReasoning.model_validate(
        {
            "segment_info": {"segment_index": index, "continuity_note": continuity_note},
            "characters": list(characters),
            "name_updates": list(name_updates),
            "relationships": list(relationships),
            "same_as": list(same_as),
            "plot_summary": {"narrative": narrative, "main_events": list(events)},
        }
    )
