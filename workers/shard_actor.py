"""The one shard writer of a run, as a Ray actor (a single writer keeps shard numbering and rotation simple)."""

from __future__ import annotations

import ray

from profiles_db.outage import Patience
from workers.context import database
from workers.shards import ShardWriter


@ray.remote(num_cpus=0, max_restarts=3)
class ShardWriterActor:
    def __init__(
        self,
        db_url: str,
        out_dir: str,
        max_records: int,
        job_id: str | None = None,
        outage_wait_s: float = 600.0,
    ) -> None:
        # out_dir may be a bucket URI: a Path would collapse its '//'. The driver verified the output before
        # starting this actor; a restarted actor only finishes or drops the temp shard its predecessor left.
        self.patience = Patience(db_url, outage_wait_s)
        self.writer = self.patience.call(
            lambda: ShardWriter(
                out_dir, database(db_url), max_records=max_records, job_id=job_id, verify=False
            ),
            "the shard writer",
        )

    def write_many(self, records: list[tuple[int, str]]) -> int:
        # written again whole after an outage: a record already in the open shard or exported is skipped
        return self.patience.call(
            lambda: sum(self.writer.write(segment_id, record) for segment_id, record in records),
            "the shard writer",
        )

    def finish(self) -> int:
        self.patience.call(self.writer.finish, "the shard writer")
        return self.writer.written
