"""What the review site shows, gathered once: the records by video, the character memory by scope, the run.

Records come from the output's shards (local or bucket), everything else from the job database: profiles
and relationships through the SQL views `v2s profiles` reads, name histories through
`profiles_db.history.identity_history`, costs and failures through the StatusReport `v2s status` prints,
and the rejects from `OUT/rejects/`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from annotator.schemas import Record
from jobs.export import read_records
from jobs.status_report import StatusReport, status_report
from profiles_db.db import Database
from profiles_db.history import IdentityHistory, identity_history
from profiles_db.lookups import first_seen as first_seen_looks
from profiles_db.lookups import video_scopes, view_rows
from workers.storage import filesystem, join


@dataclass
class VideoRecords:
    video_id: str
    uri: str
    scope: str
    records: list[Record]  # in time order

    def proxy_offset(self, record: Record) -> float:
        """Seconds to subtract from an absolute time to get the time in the record's proxy: its segment start,
        or, when segments share one proxy of the whole video (offsets mode), that proxy's start."""
        sharing = [r.video.start_s for r in self.records if r.video.proxy_uri == record.video.proxy_uri]
        return min(sharing) if len(sharing) > 1 else record.video.start_s


@dataclass
class Character:
    profile: dict  # a v_character_profiles row (aliases, former_codes, appearance_history as lists)
    history: IdentityHistory | None
    segments: list[tuple[str, int]] = field(default_factory=list)  # (video id, segment index) it is in
    # each appearance of its history with the first segment it was seen in: (appearance, video id, index)
    appearances: list[tuple[str, str | None, int | None]] = field(default_factory=list)


@dataclass
class ScopeCast:
    scope: str
    characters: list[Character]
    relationships: list[dict]  # v_relationships rows


@dataclass
class ReviewData:
    out: str
    videos: list[VideoRecords]
    casts: list[ScopeCast]
    report: StatusReport
    rejects: list[dict]


def collect(out: str, db: Database) -> ReviewData:
    records = read_records(out)
    by_video: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_video[record.video.video_id].append(record)
    scope_of = {row["id"]: row["scope"] for row in _videos(db)}
    videos = [
        VideoRecords(
            video_id=vid,
            uri=rs[0].video.uri,
            scope=scope_of.get(vid) or rs[0].video.series or vid,
            records=sorted(rs, key=lambda r: r.video.start_s),
        )
        for vid, rs in sorted(by_video.items(), key=lambda item: item[1][0].video.uri)
    ]
    return ReviewData(
        out=out,
        videos=videos,
        casts=_casts(db, videos),
        report=status_report(db, None),
        rejects=_rejects(out),
    )


def _videos(db: Database) -> list[dict]:
    return [{"id": vid, "scope": scope} for vid, scope in video_scopes(db).items()]


def _casts(db: Database, videos: list[VideoRecords]) -> list[ScopeCast]:
    appears: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for video in videos:
        for record in video.records:
            for character in record.characters:
                appears[(video.scope, character.code)].append((video.video_id, record.video.segment_index))
    first_seen = first_seen_looks(db)
    casts = []
    for scope in sorted({v.scope for v in videos}):
        rows = view_rows(db, "v_character_profiles", scope, "code")
        characters = [
            Character(
                profile=row,
                history=identity_history(db, scope, row["code"]),
                segments=appears.get((scope, row["code"]), []),
                appearances=[
                    (look, *first_seen.get((row["character_id"], look), (None, None)))
                    for look in row.get("appearance_history") or []
                ],
            )
            for row in rows
        ]
        casts.append(ScopeCast(scope, characters, view_rows(db, "v_relationships", scope, "a_code, b_code")))
    return casts


def _rejects(out: str) -> list[dict]:
    fs, root = filesystem(join(out, "rejects"))
    try:
        names = sorted(fs.glob(f"{root}/*.json"))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            found.append(json.loads(fs.cat_file(name)))
        except (OSError, ValueError) as exc:
            found.append({"video": Path(name).name, "reasons": [f"unreadable reject file: {exc}"]})
    return found
