"""Two processes migrating one new database at once: both succeed, one waits for the other.

On PostgreSQL the race is between two `CREATE TABLE`s (each creates a row type in pg_type), so the loser used
to fail with "duplicate key … pg_type_typname_nsp_index". SQLite has its file lock; both are checked here.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from profiles_db.db import sqlite_url
from profiles_db.models import Base
from tests.support.db import postgres_admin_url

ROUNDS = 3  # the race is lost most times per pair on main; three fresh databases make a pass meaningful


def _upgrade_after(barrier, url: str, results) -> None:
    from profiles_db.db import upgrade

    barrier.wait()
    try:
        upgrade(url)
        results.put("ok")
    except Exception as exc:  # the test reports what the loser saw
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")


def _admin():
    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("V2S_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL unreachable: {type(exc).__name__}")
        pytest.skip(f"PostgreSQL unreachable: {type(exc).__name__}")
    return admin


@pytest.fixture
def new_database(request, tmp_path) -> Iterator:
    """A factory of empty databases of the parametrised kind; PostgreSQL ones are dropped at the end."""
    made: list[str] = []
    admin = _admin() if request.param == "postgres" else None

    def make() -> str:
        if admin is None:
            return sqlite_url(tmp_path / f"{secrets.token_hex(4)}.sqlite")
        name = f"v2s_race_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "new_database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_processes_upgrading_a_new_database_at_once_both_succeed(new_database):
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no shared engine or module state
    for _ in range(ROUNDS):
        url = new_database()
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_upgrade_after, args=(barrier, url, results)) for _ in range(2)]
        for proc in procs:
            proc.start()
        outcomes = sorted(results.get(timeout=120) for _ in procs)
        for proc in procs:
            proc.join(timeout=60)
        assert outcomes == ["ok", "ok"]
        assert {t.name for t in Base.metadata.sorted_tables} <= _tables(url)


@pytest.mark.parametrize(
    "new_database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_db_upgrade_commands_at_once_both_exit_0_without_a_traceback(new_database, tmp_path: Path):
    for _ in range(ROUNDS):
        url = new_database()
        cmd = [sys.executable, "-m", "jobs.cli", "db", "upgrade", "--database-url", url]
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
        ]
        outs = [proc.communicate(timeout=180) for proc in procs]
        for proc, (out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err[-2000:]
            assert "Traceback" not in out + err
            assert "database is at the latest schema" in out
