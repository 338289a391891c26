"""Exactly-once shards on a real SQLite database, including every crash point of a shard's life."""

from __future__ import annotations

import hashlib
import json

import pytest

from profiles_db.db import Database, sqlite_url
from profiles_db.models import Segment, Video
from profiles_db.stages import StageStore
from workers.shards import ShardWriter


@pytest.fixture
def db(tmp_path):
    database = Database(sqlite_url(tmp_path / "v2s.sqlite"))
    with database.transaction() as s:
        s.add(Video(id="v1", uri="/films/a.mp4", scope="v1", status="split"))
        s.flush()
        for idx in range(1, 8):
            s.add(Segment(video_id="v1", idx=idx, start_s=idx * 10.0, end_s=idx * 10.0 + 10))
    yield database
    database.dispose()


def _record(segment_id: int) -> str:
    return json.dumps({"id": f"rec-{segment_id}", "payload": "x" * 10})


def _lines(out):
    return [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]


def test_rotation_manifest_and_no_duplicates(tmp_path, db):
    out = tmp_path / "out"
    writer = ShardWriter(out, db, max_records=3)
    for sid in range(1, 8):
        assert writer.write(sid, _record(sid))
    assert not writer.write(2, _record(2))  # already in a closed shard
    writer.finish()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["records"] for s in manifest["shards"]] == [3, 3, 1]
    for shard in manifest["shards"]:
        data = (out / "shards" / shard["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert sorted(r["id"] for r in _lines(out)) == sorted(f"rec-{i}" for i in range(1, 8))

    again = ShardWriter(out, db, max_records=3)  # a second run over the same output
    assert not any(again.write(sid, _record(sid)) for sid in range(1, 8))
    again.finish()
    assert len(_lines(out)) == 7
    assert StageStore(db).progress()["export"] == {"done": 7}


def test_crash_before_commit_drops_the_temp_shard_and_rewrites_later(tmp_path, db):
    out = tmp_path / "out"
    writer = ShardWriter(out, db, max_records=10)
    writer.write(1, _record(1))
    writer.write(2, _record(2))
    writer._handle.flush()  # the process dies here: temp file on disk, nothing committed
    del writer
    recovered = ShardWriter(out, db, max_records=10)
    assert not list((out / "shards").glob("*.tmp"))
    assert recovered.write(1, _record(1)) and recovered.write(2, _record(2))
    recovered.finish()
    assert sorted(r["id"] for r in _lines(out)) == ["rec-1", "rec-2"]


def test_crash_between_commit_and_rename_is_finished_on_recovery(tmp_path, db):
    out = tmp_path / "out"
    writer = ShardWriter(out, db, max_records=10)
    writer.write(3, _record(3))
    name = writer._name
    original_replace = type(out).replace

    def dying_replace(self, target):
        if str(self).endswith(".tmp"):
            raise SystemExit("killed between commit and rename")
        return original_replace(self, target)

    type(out).replace = dying_replace
    try:
        with pytest.raises(SystemExit):
            writer.close_shard()
    finally:
        type(out).replace = original_replace
    assert (out / "shards" / f"{name}.tmp").exists()
    ShardWriter(out, db, max_records=10).finish()
    assert [r["id"] for r in _lines(out)] == ["rec-3"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["records"] == 1
