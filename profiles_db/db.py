"""Engines, sessions and schema upgrades for the embedded SQLite and the cluster PostgreSQL."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
_upgraded: set[str] = set()
_upgrade_lock = threading.Lock()
log = logging.getLogger(__name__)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def shown_url(url: str) -> str:
    """The URL as logs and messages may show it: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def without_password(url: str) -> str:
    """The URL with no password at all, for places that must keep working without it (a job's command line)."""
    # URL.set() ignores None; the named tuple's _replace clears the field
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


def with_known_password(url: str, known: str | None) -> str:
    """`url`, or `known` when `url` names the same database and user with no password and `known` has one.

    A submitted job's command line carries its database URL without the password (Ray shows the command in its
    dashboard); the nodes hold the full URL in V2S_DATABASE_URL (a Kubernetes Secret), and this puts them together.
    Without a match the URL stays as it is, and the driver falls back on PostgreSQL's own PGPASSWORD / ~/.pgpass."""
    parsed = make_url(url)
    if parsed.password is not None or not known:
        return url
    full = make_url(known)
    same = (parsed.get_backend_name(), parsed.host, parsed.port, parsed.database, parsed.username) == (
        full.get_backend_name(),
        full.host,
        full.port,
        full.database,
        full.username,
    )
    return parsed.set(password=full.password).render_as_string(hide_password=False) if same else url


class UnusableDatabase(Exception):
    """A database URL that cannot be used, or a database that cannot be opened; the one-line message names it
    (never its password) and what is wrong."""


def database_url_checked(url: str) -> str:
    """`url` when SQLAlchemy can parse it and knows its dialect; else UnusableDatabase saying how to write it."""
    shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)  # never the password, parsable or not
    scheme, _, rest = shown.partition("://")
    if scheme in ("postgres", "postgresql"):  # Heroku-style and driverless URLs: SQLAlchemy has no `postgres`
        raise UnusableDatabase(
            f"database URL {shown} names no driver v2s ships: write postgresql+psycopg://{rest}"
        )
    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise UnusableDatabase(
            f"database URL {shown!r} cannot be used: expected DIALECT+DRIVER://USER@HOST[:PORT]/DB "
            "(postgresql+psycopg://…) or sqlite:////absolute/path.sqlite"
        ) from None
    return url


def make_engine(url: str) -> Engine:
    """An engine with the settings v2s relies on: WAL + busy timeout on SQLite, pre-ping on PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # NullPool: many Ray worker processes share one file; holding idle connections only adds lock contention.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below decide, see begin listener
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # pragma: no cover
            # Take the write lock at BEGIN so two writers queue on busy_timeout instead of failing
            # with "database is locked" when a read transaction tries to upgrade to a write.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


# One key for "v2s is migrating this database"; advisory locks are scoped to the database, so runs on two
# databases of one server never wait for each other.
_MIGRATION_LOCK_KEY = 0x7632_735F_6D69_67  # "v2s_mig"


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Across processes: two runs starting on a new database at once would otherwise both create its tables
    ("table … already exists" on SQLite, "duplicate key … pg_type_typname_nsp_index" on PostgreSQL). The one
    that comes second waits, then finds the schema at head and does nothing."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        with _advisory_lock(url):
            yield
        return
    if not backend.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        yield
        return
    import fcntl

    lock = Path(parsed.database).with_name(Path(parsed.database).name + ".migrate.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    """A session-level pg_advisory_lock held on its own connection while Alembic migrates on another: the lock
    does not block DDL, only the other migrator, and it is released by PostgreSQL itself if this process dies."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY}).scalar()
            if not got:
                log.info("another process is migrating %s; waiting for it", shown_url(url))
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()  # end the implicit transaction; the session-level lock outlives it
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Apply every Alembic migration (idempotent; `v2s db upgrade` and first use both call this)."""
    with _upgrade_lock:
        if url in _upgraded:
            return
        with _migration_lock(url):
            command.upgrade(alembic_config(url), "head")
        _upgraded.add(url)


class Database:
    """One database: an engine plus a session factory, upgraded on first use."""

    def __init__(self, url: str, *, auto_upgrade: bool = True) -> None:
        self.url = url
        if auto_upgrade:
            upgrade(url)
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def opened(cls, url: str) -> Database:
        """The database, upgraded; or UnusableDatabase naming it (without its password) and why not."""
        try:
            return cls(url)
        except (SQLAlchemyError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise UnusableDatabase(f"database {shown_url(url)} cannot be used: {reason}") from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
