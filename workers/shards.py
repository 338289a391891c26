"""Exactly-once JSONL shards (DESIGN.md §7), in a local folder or under a bucket prefix.

Order of a shard's life, chosen so that a crash at any point neither loses nor duplicates a record:
1. records are appended to a local temp file `part-NNNNN.jsonl.tmp` (never read by users);
2. on close, the temp file is fsynced (a bucket output also uploads it under the temp key
   `OUT/shards/part-NNNNN.jsonl.tmp`) and, in ONE transaction, every record's `export` stage is marked done with
   the shard's name;
3. the temp is renamed to `part-NNNNN.jsonl` (on a bucket: a server-side copy to the final key, then the temp key
   is deleted) and the manifest is rewritten (temp + rename locally; one atomic PUT on a bucket), then the
   dataset card `README.md` beside it (the same way), so `datasets.load_dataset(OUT)` reads the typed records.
On start, `recover()` finishes step 3 for temp shards the database says are done (when their bytes are the
recorded ones), deletes temp shards it says nothing about (their records are still pending and will be written
again), then verifies the output against the database (`workers.verify`): every shard present with the recorded
size and sha256 (damaged or deleted ones rebuilt from the stored lines), no shard the database did not write,
and the manifest rendered from the database.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from annotator.dataset_card import render_card
from profiles_db.db import Database
from profiles_db.outputs import ShardCatalog, ShardEntry, manifest_document, output_key
from profiles_db.stages import StageStore
from workers.storage import filesystem, is_remote, join, local_workdir, normalise, sha256_of


class _LocalShards:
    """Shards in a local folder: the temp file is written in place and renamed."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.staging = self.dir
        self.manifest_uri = str(out_dir / "manifest.json")
        self.card_uri = str(out_dir / "README.md")

    def stage(self, name: str) -> None:
        """The fsynced temp file is already where it must be."""

    def publish(self, name: str) -> None:
        (self.dir / f"{name}.tmp").replace(self.dir / name)

    def discard(self, name: str) -> None:
        (self.dir / f"{name}.tmp").unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        """A retired shard's file (every record of it superseded)."""
        (self.dir / name).unlink(missing_ok=True)

    def temp_names(self) -> list[str]:
        return sorted(p.name.removesuffix(".tmp") for p in self.dir.glob("part-*.jsonl.tmp"))

    def final_sizes(self) -> dict[str, int]:
        return {p.name: p.stat().st_size for p in sorted(self.dir.glob("part-*.jsonl"))}

    def open(self, name: str):
        return (self.dir / name).open("rb")

    def open_temp(self, name: str):
        return (self.dir / f"{name}.tmp").open("rb")

    def read_manifest(self) -> str | None:
        try:
            return Path(self.manifest_uri).read_text()
        except FileNotFoundError:
            return None

    def write_manifest(self, text: str) -> None:
        _replace(Path(self.manifest_uri), text)

    def read_card(self) -> str | None:
        try:
            return Path(self.card_uri).read_text()
        except FileNotFoundError:
            return None

    def write_card(self, text: str) -> None:
        _replace(Path(self.card_uri), text)


class _BucketShards:
    """Shards under a bucket prefix: staged locally, uploaded under a temp key, then copied to the final key."""

    def __init__(self, out_uri: str) -> None:
        self.fs, self.prefix = filesystem(join(out_uri, "shards"))
        self.staging = local_workdir(out_uri) / "shards"
        self.staging.mkdir(parents=True, exist_ok=True)
        self.manifest_uri = join(out_uri, "manifest.json")
        self.card_uri = join(out_uri, "README.md")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def stage(self, name: str) -> None:
        self.fs.put_file(str(self.staging / f"{name}.tmp"), self._key(f"{name}.tmp"))

    def publish(self, name: str) -> None:
        temp = self._key(f"{name}.tmp")
        if self.fs.exists(temp):  # absent only when a crash came after the copy and the delete
            self.fs.copy(temp, self._key(name))
            self.fs.rm_file(temp)
        (self.staging / f"{name}.tmp").unlink(missing_ok=True)

    def discard(self, name: str) -> None:
        if self.fs.exists(self._key(f"{name}.tmp")):
            self.fs.rm_file(self._key(f"{name}.tmp"))
        (self.staging / f"{name}.tmp").unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        """A retired shard's object (every record of it superseded)."""
        if self.fs.exists(self._key(name)):
            self.fs.rm_file(self._key(name))

    def _listing(self) -> dict[str, int]:
        try:
            found = self.fs.ls(self.prefix, detail=True)
        except FileNotFoundError:
            return {}
        return {i["name"].rsplit("/", 1)[-1]: int(i["size"]) for i in found if i.get("type") == "file"}

    def temp_names(self) -> list[str]:
        remote = {
            n.removesuffix(".tmp") for n in self._listing() if n.startswith("part-") and n.endswith(".tmp")
        }
        staged = {p.name.removesuffix(".tmp") for p in self.staging.glob("part-*.jsonl.tmp")}
        return sorted(remote | staged)

    def final_sizes(self) -> dict[str, int]:
        return {
            n: s for n, s in sorted(self._listing().items()) if n.startswith("part-") and n.endswith(".jsonl")
        }

    def open(self, name: str):
        return self.fs.open(self._key(name), "rb")

    def open_temp(self, name: str):
        staged = self.staging / f"{name}.tmp"
        if staged.exists():
            return staged.open("rb")
        return self.fs.open(self._key(f"{name}.tmp"), "rb")

    def read_manifest(self) -> str | None:
        return _read(self.manifest_uri)

    def write_manifest(self, text: str) -> None:
        fs, path = filesystem(self.manifest_uri)
        fs.pipe_file(path, text.encode())  # one PUT: readers see the old manifest or the new one

    def read_card(self) -> str | None:
        return _read(self.card_uri)

    def write_card(self, text: str) -> None:
        fs, path = filesystem(self.card_uri)
        fs.pipe_file(path, text.encode())


class ShardWriter:
    def __init__(
        self,
        out_dir: str | Path,
        db: Database,
        *,
        max_records: int = 1000,
        max_bytes: int = 256 << 20,
        job_id: str | None = None,
        recover: bool = True,
        verify: bool = True,
    ) -> None:
        out = normalise(out_dir)
        self.out = out if is_remote(out) else str(Path(out).resolve())
        self.key = output_key(self.out, db.url)  # how the database names this output
        self.shards = _BucketShards(out) if is_remote(out) else _LocalShards(Path(out))
        self.dir = self.shards.staging  # where open (temp) shard files are written
        self.db, self.store = db, StageStore(db)
        self.catalog = ShardCatalog(db, self.key)
        self.job_id = job_id
        self.max_records, self.max_bytes = max_records, max_bytes
        self._handle = None
        self._name: str | None = None
        self._pending: list[tuple[int, str]] = []  # (segment_id, record id) in the open shard
        self._bytes = 0
        self.written = 0
        self.report = None  # what the verification found (workers.verify.VerifyReport), when it ran
        if recover:  # off only for `v2s verify` without --repair, which looks and changes nothing
            self.recover(verify=verify)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, segment_id: int, record_json: str) -> bool:
        """Append one record unless this output has its segment's already; returns whether it was written."""
        if any(seg == segment_id for seg, _ in self._pending) or self.catalog.holds(segment_id):
            return False
        if self._name is not None and self._handle is None:  # a close the database refused: finish it first
            self.close_shard()
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
        """Commit the open shard. Its state is let go only once the database has it: a close cut short by an
        outage is done again, whole, by the next call (a write or finish)."""
        if self._name is None:
            return
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        name, pending = self._name, self._pending
        temp = self.dir / f"{name}.tmp"
        data = temp.read_bytes()
        lines = data.splitlines(keepends=True)
        entry = ShardEntry(name, len(lines), len(data), hashlib.sha256(data).hexdigest())
        self.shards.stage(name)
        with self.db.transaction() as s:
            self.store.mark_exported(s, [(sid, name, rid) for sid, rid in pending], self.job_id)
            self.catalog.close(
                s,
                entry,
                [(sid, rid, line) for (sid, rid), line in zip(pending, lines, strict=True)],
                self.job_id,
            )
        self._name, self._pending, self._bytes = None, [], 0
        self.shards.publish(name)
        self.written += len(pending)
        self.write_manifest()

    def _open(self) -> None:
        self._name = f"part-{self._next_number():05d}.jsonl"
        self._handle = (self.dir / f"{self._name}.tmp").open("wb")

    def _next_number(self) -> int:
        names = [
            *self.shards.final_sizes(),
            *self.shards.temp_names(),
            *(e.name for e in self.catalog.shards()),
        ]
        numbers = [int(n[5:10]) for n in names if n[5:10].isdigit()]
        return max(numbers, default=-1) + 1

    # -- recovery and manifest ---------------------------------------------------------------------
    def recover(self, *, verify: bool = True) -> None:
        """Finish or drop the temp shards of a crashed writer, then verify (and repair) the whole output
        (`verify=False`: a restarted writer actor, whose run's driver verified the output already)."""
        from workers.verify import OutputDamaged, verify_output

        temps = self.shards.temp_names()
        if temps:
            recorded = {e.name: e for e in self.catalog.shards()}
            for name in temps:
                entry = recorded.get(name)
                if entry is not None and _digest(self.shards.open_temp(name)) == entry.sha256:
                    self.shards.publish(name)  # crash between the commit and the rename: finish it
                else:  # never committed (its records are pending), or a repair cut short: verify redoes it
                    self.shards.discard(name)
        if not verify:
            return
        self.report = verify_output(self, repair=True)
        if not self.report.ok:
            raise OutputDamaged(self.report.refusal())
        self.write_card()  # an output written before the card existed, or by an older engine, gets it now

    def write_manifest(self) -> None:
        self.shards.write_manifest(json.dumps(manifest_document(self.catalog.shards()), indent=2))
        self.write_card()

    def write_card(self) -> None:
        """`README.md`, the dataset card, rendered from the catalog like the manifest (written only when it
        changed, so an unchanged output is not rewritten on every start)."""
        shards = [e.manifest() for e in self.catalog.shards() if not e.retired]
        card = render_card(shards, sum(s["records"] for s in shards))
        if self.shards.read_card() != card:
            self.shards.write_card(card)

    def finish(self) -> int:
        self.close_shard()
        return self.written


def _replace(target: Path, text: str) -> None:
    """Temp + rename: a reader sees the old file or the new one, never half of it."""
    temp = target.with_name(f"{target.name}.tmp")
    temp.write_text(text)
    temp.replace(target)


def _read(uri: str) -> str | None:
    fs, path = filesystem(uri)
    try:
        return fs.cat_file(path).decode()
    except FileNotFoundError:
        return None


def _digest(handle) -> str:
    with handle:
        return sha256_of(handle)
