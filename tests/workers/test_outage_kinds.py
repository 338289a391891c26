"""Which database errors are an outage a run waits out, and which are mistakes it must not hide (#30): real
errors from the session's PostgreSQL and from SQLite."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from profiles_db.db import Database, sqlite_url
from profiles_db.outage import DatabaseOutage, Patience, is_outage


def _error(db: Database, sql: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, db.engine.connect() as connection:
        connection.execute(text(sql))
    return caught.value


@pytest.mark.postgres
def test_a_terminated_connection_is_an_outage_and_a_wrong_statement_is_not(postgres_url):
    db = Database(postgres_url, auto_upgrade=False)
    try:
        # the server ends this session, as a restart or failover does (SQLSTATE 57P01 admin_shutdown)
        assert is_outage(_error(db, "SELECT pg_terminate_backend(pg_backend_pid())"))
        assert not is_outage(_error(db, "SELEC 1"))  # syntax error 42601
        assert not is_outage(_error(db, "SELECT 1/0"))  # 22012
        assert not is_outage(_error(db, "SELECT * FROM no_such_table_here"))  # 42P01
    finally:
        db.dispose()


def test_sqlite_mistakes_are_not_outages_and_patience_lets_them_through(tmp_path):
    db = Database(sqlite_url(tmp_path / "v.sqlite"), auto_upgrade=False)
    wrong = _error(db, "SELECT * FROM no_such_table_here")
    assert not is_outage(wrong)
    calls = []

    def fails():
        calls.append(1)
        raise wrong

    with pytest.raises(DBAPIError):
        Patience(db.url, wait_s=30).call(fails)
    assert len(calls) == 1  # not retried: a mistake is not waited out


def test_patience_ends_in_one_line_naming_the_database_without_its_password(tmp_path):
    db = Database("postgresql+psycopg://v2s:s3cret@127.0.0.1:1/none", auto_upgrade=False)  # nothing listens
    lines: list[str] = []
    with pytest.raises(DatabaseOutage) as stopped:
        Patience(db.url, wait_s=1.5, on_wait=lines.append).call(db.engine.connect)
    message = str(stopped.value)
    assert "unreachable for" in message and "127.0.0.1:1/none" in message and "\n" not in message
    assert "s3cret" not in message and lines and all("s3cret" not in line for line in lines)
    db.dispose()
