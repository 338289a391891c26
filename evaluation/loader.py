"""`load_scripts(path)`: scripts to evaluate from a file or a folder, keyed by id.

Accepted inputs:
(a) a script JSON `{"meta": ..., "script": [scenes...], "high_points": ...}` — id: the file stem;
(b) a screenplay JSON `{"title", "duration_s", "cast", "script": {"meta", "script": [...]}}` — id: the file
    stem; `duration_s` bounds the last scene;
(c) JSONL output records, one per line `{"id", "video": {"uri", "start_s", "end_s", "segment_index", ...},
    "script": {... absolute seconds ...}, ...}` — lines are grouped by `video.uri`, sorted by `start_s`, and
    their scenes concatenated into one script per video; id: `Path(video.uri).stem`; the duration is the last
    segment's `end_s`, and the last scene of each segment without an `end_timestamp` ends at its segment's
    `end_s` (a scene cut by a segment boundary is two scenes, as the engine writes it). Each event keeps its
    `character_id` (the canonical CPM code) beside `character`, and the script its `video.series`: both are
    read only by the identity metric (`evaluation.identity`).
A folder is searched recursively for *.json and *.jsonl files; a *.json there that is not a script (a manifest,
say) is skipped with a warning. Records of one video may be spread over several shards.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evaluation.schema import Script, as_script, parse_seconds

log = logging.getLogger("evaluation.loader")


class _NotAScript(ValueError):
    pass


def _is_record(obj: Any) -> bool:
    return (
        isinstance(obj, dict) and isinstance(obj.get("video"), dict) and isinstance(obj.get("script"), dict)
    )


def _from_json(obj: Any, source: Path) -> Script:
    if not isinstance(obj, dict) or not isinstance(obj.get("script"), list | dict):
        raise _NotAScript(
            f"{source} is neither a script, a screenplay nor a record (no 'script' list or object)"
        )
    data = dict(obj)
    data.pop("id", None)
    script = as_script(data)
    script.id = source.stem
    return script


def _records_to_scripts(records: list[tuple[dict[str, Any], str]]) -> dict[str, Script]:
    by_uri: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for record, where in records:
        uri = record["video"].get("uri")
        if not uri:
            raise ValueError(f"{where}: record has no video.uri")
        by_uri.setdefault(str(uri), []).append((record, where))
    out: dict[str, Script] = {}
    owner: dict[str, str] = {}
    for uri, items in by_uri.items():
        items.sort(key=lambda it: float(it[0]["video"].get("start_s") or 0.0))
        scenes: list[Any] = []
        seen: set[tuple[Any, Any]] = set()
        end_s = None
        meta: dict[str, Any] = {}
        series = None
        for record, where in items:
            video = record["video"]
            series = series or video.get("series")
            mark = (video.get("segment_index"), video.get("start_s"))
            if mark in seen:
                log.warning("%s: duplicate record for %s segment %s ignored", where, uri, mark[0])
                continue
            seen.add(mark)
            try:
                part = as_script(record["script"])
            except ValueError as exc:
                raise ValueError(f"{where}: record script is not valid: {exc}") from None
            meta = meta or part.meta
            seg_end = video.get("end_s")
            seg_end = parse_seconds(seg_end) if seg_end is not None else None
            if part.script and seg_end is not None:
                last = part.script[-1]
                latest = max((e.timestamp for e in last.events), default=last.start_timestamp or 0.0)
                if last.end_timestamp is None and seg_end >= latest:
                    last.end_timestamp = seg_end
            if seg_end is not None:
                end_s = seg_end if end_s is None else max(end_s, seg_end)
            scenes.extend(part.script)
        sid = Path(uri).stem or uri
        if sid in out:
            raise ValueError(f"videos {owner[sid]} and {uri} both have the id {sid!r}")
        owner[sid] = uri
        out[sid] = Script(id=sid, meta=meta, script=scenes, duration_s=end_s, series=series)
    return out


def scripts_from_records(records: list[dict[str, Any]], source: str = "records") -> dict[str, Script]:
    """Scripts by id from output records already read (dicts), grouped by video as `load_scripts` groups a
    JSONL of them; `source` names them in errors."""
    for n, record in enumerate(records, start=1):
        if not _is_record(record):
            raise ValueError(f"{source} #{n}: not an output record (needs 'video' and 'script' objects)")
    return _records_to_scripts([(record, f"{source} #{n}") for n, record in enumerate(records, start=1)])


def _read_jsonl(path: Path) -> list[tuple[dict[str, Any], str]]:
    records = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
            if not _is_record(obj):
                raise ValueError(f"{path}:{n}: not an output record (needs 'video' and 'script' objects)")
            records.append((obj, f"{path}:{n}"))
    return records


def load_scripts(path: str | Path) -> dict[str, Script]:
    """Scripts keyed by id from a script/screenplay JSON, a JSONL of records, or a folder of those."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".jsonl")) if root.is_dir() else [root]
    scripts: dict[str, Script] = {}
    records: list[tuple[dict[str, Any], str]] = []

    def add(script: Script, source: Path) -> None:
        if script.id in scripts:
            raise ValueError(f"two scripts have the id {script.id!r} (the second from {source})")
        scripts[script.id] = script

    for file in files:
        if file.suffix == ".jsonl":
            records.extend(_read_jsonl(file))
            continue
        try:
            obj = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{file}: not JSON ({exc})") from None
        if _is_record(obj):
            records.append((obj, str(file)))
            continue
        try:
            add(_from_json(obj, file), file)
        except _NotAScript:
            if root.is_dir():
                log.warning("%s is not a script; skipped", file)
                continue
            raise
    for sid, script in _records_to_scripts(records).items():
        add(script, Path(sid))
    return scripts
