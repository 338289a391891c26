"""Exactly-once JSONL shards (DESIGN.md §7).

Order of a shard's life, chosen so that a crash at any point neither loses nor duplicates a record:
1. records are appended to `part-NNNNN.jsonl.tmp` (never read by users);
2. on close, the temp file is fsynced and, in ONE transaction, every record's `export` stage is marked done with
   the shard's name;
3. the temp file is renamed to `part-NNNNN.jsonl` and the manifest is rewritten (temp + rename).
On start, `recover()` finishes step 3 for shards the database says are done, deletes temp files it says nothing
about (their records are still pending and will be written again), and rebuilds the manifest from the files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import select

from profiles_db.db import Database
from profiles_db.models import StageRun
from profiles_db.stages import StageStore


class ShardWriter:
    def __init__(
        self, out_dir: Path, db: Database, *, max_records: int = 1000, max_bytes: int = 256 << 20
    ) -> None:
        self.dir = Path(out_dir) / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest_path = Path(out_dir) / "manifest.json"
        self.db, self.store = db, StageStore(db)
        self.max_records, self.max_bytes = max_records, max_bytes
        self._handle = None
        self._name: str | None = None
        self._pending: list[tuple[int, str]] = []  # (segment_id, record id) in the open shard
        self._bytes = 0
        self.written = 0
        self.recover()

    # -- writing -----------------------------------------------------------------------------------
    def write(self, segment_id: int, record_json: str) -> bool:
        """Append one record unless its segment was already exported; returns whether it was written."""
        status, _ = self.store.result(segment_id, "export")
        if status == "done" or any(seg == segment_id for seg, _ in self._pending):
            return False
        if self._handle is None:
            self._open()
        line = record_json.strip() + "\n"
        self._handle.write(line.encode())
        self._pending.append((segment_id, json.loads(record_json)["id"]))
        self._bytes += len(line)
        if len(self._pending) >= self.max_records or self._bytes >= self.max_bytes:
            self.close_shard()
        return True

    def close_shard(self) -> None:
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        name, pending = self._name, self._pending
        self._handle, self._name, self._pending, self._bytes = None, None, [], 0
        with self.db.transaction() as s:
            for segment_id, rid in pending:
                run = s.scalar(
                    select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == "export")
                )
                if run is None:
                    run = StageRun(segment_id=segment_id, stage="export", attempts=1)
                    s.add(run)
                run.status, run.outcome, run.error = "done", "done", None
                run.result = {"shard": name, "record_id": rid}
        (self.dir / f"{name}.tmp").replace(self.dir / name)
        self.written += len(pending)
        self._write_manifest()

    def _open(self) -> None:
        self._name = f"part-{self._next_number():05d}.jsonl"
        self._handle = (self.dir / f"{self._name}.tmp").open("wb")

    def _next_number(self) -> int:
        numbers = [int(p.name[5:10]) for p in self.dir.glob("part-*.jsonl*") if p.name[5:10].isdigit()]
        return max(numbers, default=-1) + 1

    # -- recovery and manifest ---------------------------------------------------------------------
    def recover(self) -> None:
        with self.db.sessions() as s:
            runs = s.scalars(
                select(StageRun).where(StageRun.stage == "export", StageRun.status == "done")
            ).all()
            committed = {(r.result or {}).get("shard") for r in runs}
        for temp in self.dir.glob("part-*.jsonl.tmp"):
            final = temp.with_suffix("")
            if temp.with_suffix("").name in committed:
                temp.replace(final)  # crash between the commit and the rename: finish it
            else:
                temp.unlink()  # never committed: its records are still pending and will be written again
        self._write_manifest()

    def _write_manifest(self) -> None:
        previous = self._read_manifest()
        shards = []
        for path in sorted(self.dir.glob("part-*.jsonl")):
            stat = path.stat()
            entry = previous.get(path.name)
            if entry is None or entry.get("bytes") != stat.st_size:
                entry = {"name": path.name, "bytes": stat.st_size, **_count_and_hash(path)}
            shards.append(entry)
        manifest = {
            "shards": shards,
            "records": sum(s["records"] for s in shards),
            "schema": "v2s.record/1",
        }
        temp = self.manifest_path.with_suffix(".json.tmp")
        temp.write_text(json.dumps(manifest, indent=2))
        temp.replace(self.manifest_path)

    def _read_manifest(self) -> dict[str, dict]:
        try:
            return {s["name"]: s for s in json.loads(self.manifest_path.read_text())["shards"]}
        except (FileNotFoundError, ValueError, KeyError):
            return {}

    def finish(self) -> int:
        self.close_shard()
        return self.written


def _count_and_hash(path: Path) -> dict:
    digest, count = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for line in handle:
            digest.update(line)
            count += 1
    return {"records": count, "sha256": digest.hexdigest()}
