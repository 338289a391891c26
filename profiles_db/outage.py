"""Database outages are waited out, not fatal (#30).

A PostgreSQL restart, a stopped server, a dropped network link or a locked or full SQLite file all surface as
driver errors in the middle of a run. What a run does about them is the same everywhere (the driver's own
calls, every Ray task, the shard writer): wait for the database with backoff, then do the work again, since
every step of a run is idempotent (stage leases, the response cache and its journal make a repeated step pay
for nothing twice). When the database stays away longer than the run's patience, `DatabaseOutage` says so in
one line and the run stops, resumable.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from profiles_db.db import shown_url

T = TypeVar("T")
log = logging.getLogger(__name__)

# PostgreSQL SQLSTATE classes that mean "the server or its link is away", not "this statement is wrong":
# 08 connection exception, 53 insufficient resources (disk full 53100, out of memory, too many connections),
# 57P admin or crash shutdown, "cannot connect now" while it starts (postgresql.org/docs/current/errcodes-appendix)
_PG_TRANSIENT = ("08", "53", "57P")
# SQLite's errors of the same kind (sqlite.org/rescode.html: SQLITE_BUSY, SQLITE_IOERR, SQLITE_FULL,
# SQLITE_CANTOPEN), as Python's sqlite3 words them
_SQLITE_TRANSIENT = (
    "database is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database",
)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DatabaseOutage(Exception):
    """The database stayed unreachable for the run's whole patience (one line, no password)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it, also across a Ray task boundary (a task's error carries it as `cause`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the database being away."""
    return any(
        isinstance(e, DatabaseOutage | DisconnectionError | PoolTimeout)
        or (isinstance(e, DBAPIError) and _transient(e))
        for e in _chain(exc)
    )


def _given_up(exc: BaseException) -> DatabaseOutage | None:
    """The outage some part already waited out in full (a task's, or an inner call's): the innermost, since
    Ray's error for a task is itself an instance of the task's exception class, worded as a traceback."""
    found = [e for e in _chain(exc) if isinstance(e, DatabaseOutage)]
    return found[-1] if found else None


def as_outage(exc: BaseException) -> DatabaseOutage | None:
    """The DatabaseOutage `exc` stands for: the one a part gave up on, a new one for a bare outage, or None."""
    if not is_outage(exc):
        return None
    given_up = _given_up(exc)
    return DatabaseOutage(
        str(given_up) if given_up else f"database unreachable ({reason(exc)}); the run stopped"
    )


def _transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return state.startswith(_PG_TRANSIENT)
    if type(orig).__module__.startswith(("psycopg", "psycopg2")):
        # no SQLSTATE: the client could not reach the server at all (refused, reset, closed unexpectedly)
        return type(orig).__name__ in ("OperationalError", "InterfaceError")
    message = str(orig).lower()
    if any(m in message for m in _SQLITE_TRANSIENT):
        return True
    return isinstance(orig, OSError) and orig.errno in _DISK_FULL


def reason(exc: BaseException) -> str:
    """The first line of what the driver said, for a log line or a message."""
    inner = getattr(exc, "orig", None) or getattr(exc, "cause", None) or exc
    return (str(inner).strip().splitlines() or [type(inner).__name__])[0][:200]


class Patience:
    """How long a run waits for its database (named by `url`), and how it says it is waiting."""

    def __init__(self, url: str, wait_s: float, on_wait: Callable[[str], None] | None = None) -> None:
        # the URL only: opening the database (a new worker's first use upgrades it) belongs inside `call`,
        # where an outage that meets it is waited out too
        self.url, self.wait_s = url, wait_s
        self.on_wait = on_wait or (lambda line: log.warning("%s", line))

    def call(self, fn: Callable[[], T], what: str = "the run") -> T:
        """`fn()`, done again once the database is back after an outage; DatabaseOutage after `wait_s`."""
        started = time.monotonic()

        def waiting(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.on_wait(
                f"database {shown_url(self.url)} unreachable ({reason(exc) if exc else 'no answer'}): "
                f"{what} waits (up to {self.wait_s:.0f} s, {time.monotonic() - started:.0f} s so far)"
            )

        retrying = Retrying(
            # an outage some inner part already waited out in full is not waited for again
            retry=retry_if_exception(lambda e: is_outage(e) and _given_up(e) is None),
            wait=wait_exponential_jitter(initial=0.5, max=10.0),
            stop=stop_after_delay(self.wait_s),
            before_sleep=waiting,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as exc:
            if not is_outage(exc) or _given_up(exc) is not None:
                raise
            raise DatabaseOutage(
                f"database {shown_url(self.url)} unreachable for {time.monotonic() - started:.0f} s "
                f"({reason(exc)}); {what} stopped"
            ) from None


class Patient:
    """Every method of `target` called through `patience`: the driver's store and ledger, whose calls are
    reads or idempotent writes, so calling one again after an outage is safe."""

    def __init__(self, target: object, patience: Patience) -> None:
        self._target, self._patience = target, patience

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            return self._patience.call(lambda: value(*args, **kwargs), f"the driver ({name})")

        return call
