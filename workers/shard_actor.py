"""The one shard writer of a run, as a Ray actor (a single writer keeps shard numbering and rotation simple)."""

from __future__ import annotations

import ray

from workers.context import database
from workers.shards import ShardWriter


@ray.remote(num_cpus=0, max_restarts=3)
class ShardWriterActor:
    def __init__(self, db_url: str, out_dir: str, max_records: int) -> None:
        # out_dir may be a bucket URI: a Path would collapse its '//'
        self.writer = ShardWriter(out_dir, database(db_url), max_records=max_records)

    def write_many(self, records: list[tuple[int, str]]) -> int:
        return sum(self.writer.write(segment_id, record) for segment_id, record in records)

    def finish(self) -> int:
        self.writer.finish()
        return self.writer.written
