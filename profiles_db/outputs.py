"""What an output must contain, and who may write it (docs/reliability.md).

- `ShardCatalog`: the closed shards of an output and the exact bytes of each of their lines. A shard is entered
  in the same transaction that marks its records exported, so the database alone says what the files must be:
  the manifest is rendered from it, and a damaged or deleted shard is rebuilt from it byte for byte.
- `OutputLease`: one live run per output. The lease lives in the database (so it holds across machines), is
  renewed by a heartbeat, and is taken over when it has expired or when its holder is a dead process of this
  host (a killed driver's `v2s resume` need not wait for the lease to run out).
"""

from __future__ import annotations

import os
import socket
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from annotator.schemas.record import SCHEMA_VERSION
from profiles_db.db import Database
from profiles_db.models import OutputLock, Shard, ShardRecord
from profiles_db.stages.states import aware

DEFAULT_OUTPUT_LEASE_S = 60.0  # the job passes V2S_OUTPUT_LEASE_S (jobs.settings); renewed every third


SELF = "."  # the key of an output whose database is its own OUT/v2s.sqlite


def output_key(out: str, db_url: str) -> str:
    """How the database names an output: "." when the database is the output's own SQLite file inside it (so
    the folder can be moved or copied whole), else the output's absolute path or bucket URI."""
    from sqlalchemy.engine import make_url

    if "://" in out:
        return out
    url = make_url(db_url)
    own = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if own and Path(url.database).resolve().parent == Path(out).resolve():
        return SELF
    return str(Path(out).resolve())


@dataclass(frozen=True)
class ShardEntry:
    name: str
    records: int
    bytes: int
    sha256: str

    @property
    def retired(self) -> bool:
        """Every record of it was superseded: the catalog keeps its name (never reused), the output no file."""
        return self.records == 0

    def manifest(self) -> dict:
        return {"name": self.name, "bytes": self.bytes, "records": self.records, "sha256": self.sha256}


def manifest_document(entries: list[ShardEntry]) -> dict:
    """manifest.json of an output: its shards by name, the record count, and the record schema's major version
    (a reader of `v2s.record/2` reads every 2.x record; annotator.schemas.record.SCHEMA_VERSION)."""
    # a shard whose every record was superseded (profiles_db/versions.py) has no file and is not listed
    shards = [e.manifest() for e in sorted(entries, key=lambda e: e.name) if not e.retired]
    major = SCHEMA_VERSION.split(".")[0]
    return {"shards": shards, "records": sum(s["records"] for s in shards), "schema": f"v2s.record/{major}"}


class ShardCatalog:
    def __init__(self, db: Database, out: str) -> None:
        self.db, self.out = db, out

    def shards(self) -> list[ShardEntry]:
        with self.db.sessions() as s:
            rows = s.scalars(select(Shard).where(Shard.out == self.out).order_by(Shard.name)).all()
        return [ShardEntry(r.name, r.records, r.bytes, r.sha256) for r in rows]

    def close(
        self,
        s,
        entry: ShardEntry,
        lines: list[tuple[int, str, bytes]],
        job_id: str | None,
    ) -> None:
        """Inside the exporting transaction `s`: the shard row and every line's bytes."""
        s.add(
            Shard(
                out=self.out,
                name=entry.name,
                records=entry.records,
                bytes=entry.bytes,
                sha256=entry.sha256,
                job_id=job_id,
            )
        )
        for number, (segment_id, record_id, body) in enumerate(lines):
            s.add(
                ShardRecord(
                    out=self.out,
                    shard=entry.name,
                    line=number,
                    segment_id=segment_id,
                    record_id=record_id,
                    body=zlib.compress(body, 6),
                )
            )

    def holds(self, segment_id: int) -> bool:
        """Whether this output has the segment's record (in a shard the database committed)."""
        with self.db.sessions() as s:
            found = s.scalar(
                select(ShardRecord.line).where(
                    ShardRecord.out == self.out, ShardRecord.segment_id == segment_id
                )
            )
        return found is not None

    def lines(self, name: str) -> list[bytes]:
        """The shard's lines, in order, exactly as they were written."""
        with self.db.sessions() as s:
            rows = s.scalars(
                select(ShardRecord.body)
                .where(ShardRecord.out == self.out, ShardRecord.shard == name)
                .order_by(ShardRecord.line)
            ).all()
        return [zlib.decompress(body) for body in rows]

    def exported_elsewhere(self) -> dict[str, int]:
        """Shards named by export rows of segments whose lines this catalog does not hold (count per shard)
        — outputs written before the catalog existed, or by another output sharing the database."""
        from profiles_db.stages import StageStore

        with self.db.sessions() as s:
            held = set(s.scalars(select(ShardRecord.segment_id).where(ShardRecord.out == self.out)))
        missing: dict[str, int] = {}
        for segment_id, shard, _ in StageStore(self.db).exported():
            if segment_id not in held:
                name = shard or "?"
                missing[name] = missing.get(name, 0) + 1
        return missing


class OutputBusy(RuntimeError):
    """Another live run holds the output; the message names it and what to do."""


class OutputLease:
    def __init__(
        self, db: Database, out: str, job_id: str, *, lease_s: float | None = None, label: str | None = None
    ) -> None:
        self.db, self.out, self.job_id = db, out, job_id  # out: the output's key (output_key)
        self.label = label or out
        self.lease_s = lease_s or DEFAULT_OUTPUT_LEASE_S
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> None:
        try:
            self._acquire()
        except IntegrityError:  # two runs inserted the first lease at once (PostgreSQL): the row is there now
            self._acquire()

    def _acquire(self) -> None:
        now = datetime.now(UTC)
        with self.db.transaction() as s:
            lock = s.scalar(select(OutputLock).where(OutputLock.out == self.out).with_for_update())
            if lock is not None and lock.holder != self.holder and not self._stale(lock, now):
                left = (aware(lock.expires_at) - now).total_seconds()
                raise OutputBusy(
                    f"output {self.label} is being written by job {lock.job_id} ({lock.host}, pid {lock.pid}); "
                    f"one run per output: wait for it to finish, or `v2s cancel {lock.job_id}`"
                    f" (its lease runs out {left:.0f} s after its last heartbeat if it died)"
                )
            if lock is None:
                s.add(self._row(now))
            else:
                for key, value in self._fields(now).items():
                    setattr(lock, key, value)

    def renew(self) -> bool:
        """Heartbeat; False when the lease was lost (taken over after it expired)."""
        with self.db.transaction() as s:
            lock = s.scalar(select(OutputLock).where(OutputLock.out == self.out).with_for_update())
            if lock is None or lock.holder != self.holder:
                return False
            lock.expires_at = datetime.now(UTC) + timedelta(seconds=self.lease_s)
            return True

    def release(self) -> None:
        with self.db.transaction() as s:
            s.execute(delete(OutputLock).where(OutputLock.out == self.out, OutputLock.holder == self.holder))

    def _stale(self, lock: OutputLock, now: datetime) -> bool:
        if aware(lock.expires_at) <= now:
            return True
        return lock.host == self.host and not _alive(lock.pid)

    def _fields(self, now: datetime) -> dict:
        return {
            "job_id": self.job_id,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": now,
            "expires_at": now + timedelta(seconds=self.lease_s),
        }

    def _row(self, now: datetime) -> OutputLock:
        return OutputLock(out=self.out, **self._fields(now))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def jobs_with_live_runs(db: Database) -> set[str]:
    """The jobs whose run holds its output's lease now: a `running` job outside this set has no run behind it
    (it stopped without saying so, e.g. when its database was away as it stopped)."""
    now = datetime.now(UTC)
    with db.sessions() as s:
        return {lock.job_id for lock in s.scalars(select(OutputLock)) if aware(lock.expires_at) > now}
