"""The one shard writer of a run, as a Ray actor (a single writer keeps shard numbering and rotation simple)."""

from __future__ import annotations

import ray

from workers.context import database
from workers.shards import ShardWriter


@ray.remote(num_cpus=0, max_restarts=3)
class ShardWriterActor:
    def __init__(self, db_url: str, out_dir: str, max_records: int, job_id: str | None = None) -> None:
        # out_dir may be a bucket URI: a Path would collapse its '//'. The driver verified the output before
        # starting this actor; a restarted actor only finishes or drops the temp shard its predecessor left.
        self.writer = ShardWriter(
            out_dir, database(db_url), max_records=max_records, job_id=job_id, verify=False
        )

    def write_many(self, records: list[tuple[int, str]]) -> int:
        return sum(self.writer.write(segment_id, record) for segment_id, record in records)

    def finish(self) -> int:
        self.writer.finish()
        return self.writer.written
