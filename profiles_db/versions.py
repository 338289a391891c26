"""A source that changed under the same name is a new version of its video (docs/reliability.md).

A video's id hashes its path, size and modification time (a bucket object's: URI, size, version tag), so a file
re-encoded or replaced in place comes back under a new id while the old id's rows stay. Left alone, the old
version kept its open stages (the job never `done`), its scope's chain, and its records next to the new ones
(8 records for a 4-segment film). Here the old version is closed instead: its unfinished stages are rejected
as `superseded`, its records leave every output's shards (their exact lines kept in `superseded_records`),
and the video row says by what, when, and what changed. Everything runs in the caller's session."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Mapping
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from profiles_db.models import Segment, Shard, ShardRecord, StageRun, SupersededRecord, Video, video_in_job
from profiles_db.stages.states import FINAL, SUPERSEDED, RunStatus


class SupersededVersion(BaseModel):
    """One old version closed: which source, which ids, and what became of its work."""

    uri: str
    video_id: str
    superseded_by: str
    note: str
    stages_closed: int
    records_retired: int


def supersede_changed(
    s: Session,
    current: Mapping[str, str],
    *,
    now: datetime,
    describe: Callable[[str], str] | None = None,
) -> list[SupersededVersion]:
    """Close every older version of the sources in `current` (URI → the video id the listing gives it now).

    `describe(uri)`: what the source is now (its size and modification time), for the note; a bucket or a
    source gone since the listing may have nothing to say."""
    closed: list[SupersededVersion] = []
    for uri, video_id in sorted(current.items()):
        olds = s.scalars(
            select(Video)
            .where(Video.uri == uri, Video.id != video_id, Video.superseded_by.is_(None))
            .order_by(Video.created_at, Video.id)
        ).all()
        for old in olds:
            closed.append(_close(s, old, video_id, now, describe(uri) if describe else ""))
    return closed


def _close(s: Session, old: Video, new_id: str, now: datetime, now_is: str) -> SupersededVersion:
    segment_ids = list(s.scalars(select(Segment.id).where(Segment.video_id == old.id)))
    closed = s.execute(
        update(StageRun)
        .where(StageRun.segment_id.in_(segment_ids), StageRun.status.not_in(list(FINAL)))
        .values(
            status=RunStatus.REJECTED,
            outcome=SUPERSEDED,
            error=f"superseded: the source changed (now video {new_id})",
            lease_owner=None,
            lease_expires=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    retired = retire_records(s, segment_ids, now)
    note = f"content changed (was video {old.id}, now {new_id})"
    if now_is:
        note += f"; now {now_is}"
    old.superseded_by, old.superseded_at, old.change_note = new_id, now, note
    return SupersededVersion(
        uri=old.uri,
        video_id=old.id,
        superseded_by=new_id,
        note=note,
        stages_closed=int(closed or 0),
        records_retired=retired,
    )


def retire_records(s: Session, segment_ids: list[int], now: datetime) -> int:
    """Take these segments' lines out of every output's shard catalog: each line moves to `superseded_records`,
    the shard keeps its other lines (renumbered, in order) and gets the size, sha256 and count they make.

    Only the catalog changes here; the next verification (every run starts with one, `v2s verify --repair`)
    finds each file differing from it and rebuilds it from the stored lines, so a crash between the two leaves
    an output that the next run mends. A shard left with no line stays in the catalog with 0 records (its name is
    not used again); verification removes its file and the manifest leaves it out. Returns the lines moved."""
    if not segment_ids:
        return 0
    rows = s.scalars(select(ShardRecord).where(ShardRecord.segment_id.in_(segment_ids))).all()
    touched = sorted({(r.out, r.shard) for r in rows})
    for row in rows:
        s.add(
            SupersededRecord(
                out=row.out,
                record_id=row.record_id,
                segment_id=row.segment_id,
                shard=row.shard,
                body=row.body,
                superseded_at=now,
            )
        )
        s.delete(row)
    s.flush()
    for out, name in touched:
        _renumber(s, out, name)
    return len(rows)


def _renumber(s: Session, out: str, name: str) -> None:
    kept = s.execute(
        select(ShardRecord.line, ShardRecord.body)
        .where(ShardRecord.out == out, ShardRecord.shard == name)
        .order_by(ShardRecord.line)
    ).all()
    # ascending, one statement each: line k's slot is free by then (its holder was moved away or down before)
    for new, (old, _) in enumerate(kept):
        if new != old:
            s.execute(
                update(ShardRecord)
                .where(ShardRecord.out == out, ShardRecord.shard == name, ShardRecord.line == old)
                .values(line=new)
                .execution_options(synchronize_session=False)
            )
    data = b"".join(zlib.decompress(body) for _, body in kept)
    shard = s.get(Shard, (out, name))
    if shard is not None:
        shard.records, shard.bytes, shard.sha256 = len(kept), len(data), hashlib.sha256(data).hexdigest()


class SupersededSource(BaseModel):
    """An old version as `v2s status` lists it."""

    uri: str
    video_id: str
    superseded_by: str
    superseded_at: datetime | None = None
    note: str | None = None


def superseded_sources(s: Session, job_id: str | None) -> list[SupersededSource]:
    """The old versions of the job's sources (its own, or those of the URIs its videos have now); every one
    when `job_id` is None."""
    query = select(Video).where(Video.superseded_by.is_not(None)).order_by(Video.uri, Video.superseded_at)
    if job_id:
        uris = select(Video.uri).where(video_in_job(job_id))
        query = query.where(video_in_job(job_id) | Video.uri.in_(uris))
    return [
        SupersededSource(
            uri=v.uri,
            video_id=v.id,
            superseded_by=v.superseded_by,
            superseded_at=v.superseded_at,
            note=v.change_note,
        )
        for v in s.scalars(query)
    ]
