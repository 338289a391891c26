"""The database's ground truth (reviewers' corrections) as the evaluation reads it, and as files.

A stored segment becomes an output record in shape (`video` + `script`, absolute seconds), so the evaluation
groups it by video like any JSONL of records. Names are resolved at read time through the CPM, like the
records' names at export: a character renamed after its segment was reviewed shows its newest name. Only the
reviewed segments are ground truth, so `corrected_pair` scores the predictions of those segments only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evaluation.loader import scripts_from_records
from evaluation.schema import Script
from jobs.export import read_records, write_bytes
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.ground_truth import EVENT_TEXTS, SCENE_TEXTS, StoredGt, load
from workers.storage import join


def is_run_output(path: str | Path) -> bool:
    """A run's --out folder (its shards and manifest), as opposed to files of scripts."""
    root = Path(path)
    return (root / "shards").is_dir() and (root / "manifest.json").is_file()


def gt_records(db: Database) -> list[dict[str, Any]]:
    """Every corrected segment as a record-shaped dict, names resolved through the CPM of its scope."""
    stored = load(db)
    manager = CharacterProfileManager(db)
    resolvers = {scope: manager.resolver(scope) for scope in {g.scope for g in stored}}
    return [_as_record(g, resolvers[g.scope]) for g in stored]


def _as_record(g: StoredGt, resolve) -> dict[str, Any]:
    scenes = []
    for scene in g.scenes:
        events = []
        for e in scene.events:
            profile = resolve(e.character_code) if e.character_code else None
            events.append(
                {
                    "timestamp": e.timestamp_s,
                    "end_timestamp": e.end_s,
                    "character": profile.display_name if profile is not None else e.character,
                    "character_id": profile.id if profile is not None else e.character_code,
                    "voice_type": e.voice_type,
                    **{name: getattr(e, name) for name in EVENT_TEXTS},
                }
            )
        scenes.append(
            {
                "scene_id": scene.scene_id,
                "start_timestamp": scene.start_s,
                "end_timestamp": scene.end_s,
                "events": events,
                **{name: getattr(scene, name) for name in SCENE_TEXTS},
            }
        )
    series = g.scope if g.scope != g.video_id else None
    return {
        "id": g.record_id,
        "video": {
            "uri": g.uri,
            "video_id": g.video_id,
            "segment_index": g.segment_index,
            "start_s": g.start_s,
            "end_s": g.end_s,
            "series": series,
        },
        "script": {"meta": {}, "script": scenes},
        "review": {
            "reviewer": g.reviewer,
            "reviewed_at": g.reviewed_at.isoformat(),
            "source": g.source_ref,
            "changes": len(g.changes),
        },
    }


def corrected_pair(db: Database, pred: str | Path) -> tuple[dict[str, Script], dict[str, Script]]:
    """(ground truth, predictions) by video id, both limited to the segments a reviewer corrected."""
    gt = gt_records(db)
    if not gt:
        raise ValueError(
            "the database has no ground truth yet: import a review first (v2s review import), "
            "or give --gt a file or folder of scripts"
        )
    reviewed = {(r["video"]["video_id"], r["video"]["segment_index"]) for r in gt}
    kept = [r for r in _pred_records(pred) if _key(r) in reviewed]
    return scripts_from_records(gt, "ground truth"), scripts_from_records(kept, str(pred))


def _key(record: dict[str, Any]) -> tuple[str | None, int | None]:
    video = record.get("video") or {}
    return video.get("video_id"), video.get("segment_index")


def _pred_records(pred: str | Path) -> list[dict[str, Any]]:
    """Records (dicts) of a run's output, a JSONL file, or a folder of JSONL files."""
    root = Path(pred)
    if is_run_output(root):
        return [r.model_dump(mode="json") for r in read_records(str(root))]
    files = sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]
    found = []
    for file in files:
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{file}:{n}: not JSON ({exc})") from None
    return found


def write_gt(db: Database, to: str) -> dict[str, int]:
    """The ground truth as files `v2s eval --gt` reads: `ground_truth.jsonl`, one record per corrected
    segment (a file of records, so each keeps its segment's bounds). Returns file name → records."""
    records = gt_records(db)
    if not records:
        raise ValueError("the database has no ground truth yet: import a review first (v2s review import)")
    lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    write_bytes(join(to, "ground_truth.jsonl"), lines.encode())
    return {"ground_truth.jsonl": len(records)}
