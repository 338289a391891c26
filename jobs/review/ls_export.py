"""`v2s review export-labelstudio`: a run's records as Label Studio tasks with their labeling config.

Media: Label Studio must load each proxy itself. `local` (the default, works offline on one machine) points a
task at `/data/local-files/?d=PATH`, which Label Studio serves when started with
`LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and a local storage of the project covers the folder (`v2s
review push` creates it); PATH is relative to its `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT` (`/` by default).
`url` names each proxy as URL_PREFIX/ + its path inside OUT, for proxies served by any web server or bucket.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel

from annotator.media import probe
from annotator.schemas import Record
from jobs.export import read_records, write_bytes
from jobs.review.ls_format import (
    CHARACTER_NAME,
    ENVIRONMENT,
    EVENT,
    Prediction,
    Result,
    Task,
    choice_on,
    choice_value,
    labeling_config,
    region,
    text_on,
)
from jobs.review.ls_regions import Planned, Resolver, plan_regions
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.lookups import video_scopes
from workers.storage import filesystem, is_remote, join

CONFIG_FILE = "labeling_config.xml"
TASKS_FILE = "tasks.json"
MODEL_VERSION = "v2s"


class MediaSettings(BaseModel):
    media: Literal["local", "url"] = "local"
    document_root: str = "/"
    url_prefix: str | None = None


class LsExport(BaseModel):
    config: str
    tasks: list[Task]
    proxy_dirs: list[str]  # the local folders of the proxies (push covers each with a local storage)


def build_export(out: str, db: Database, media: MediaSettings) -> LsExport:
    records = read_records(out)
    if not records:
        raise ValueError(f"{out} has no records in shards/part-*.jsonl: is it the --out of a finished run?")
    if media.media == "url" and not media.url_prefix:
        raise ValueError("--media url needs --media-url (where OUT's files are served)")
    scopes = _scopes(db, records)
    manager = CharacterProfileManager(db)
    resolvers = {scope: manager.resolver(scope) for scope in set(scopes.values())}
    characters = _characters(manager, set(scopes.values()))
    fps_of: dict[str, float] = {}
    tasks = []
    for record, offset in _with_offsets(records):
        proxy = record.video.proxy_uri
        if not proxy:
            raise ValueError(
                f"record {record.id} ({record.video.uri} segment {record.video.segment_index}) "
                "has no proxy_uri: Label Studio needs the segment's video"
            )
        fps = fps_of.get(proxy) or fps_of.setdefault(proxy, _fps(proxy))
        scope = scopes[record.video.video_id]
        tasks.append(_task(record, offset, fps, scope, resolvers[scope], _media_url(out, proxy, media)))
    dirs = sorted(
        {
            posixpath.dirname(str(Path(r.video.proxy_uri).resolve()))
            for r in records
            if r.video.proxy_uri and not is_remote(r.video.proxy_uri)
        }
    )
    return LsExport(config=labeling_config(characters), tasks=tasks, proxy_dirs=dirs)


def write_export(export: LsExport, to: str) -> dict[str, int]:
    """The config and the tasks as files in `to`; returns file name → bytes written."""
    files = {
        CONFIG_FILE: export.config.encode(),
        TASKS_FILE: json.dumps(
            [t.model_dump(mode="json", exclude_none=True, exclude={"annotations"}) for t in export.tasks],
            indent=1,
            ensure_ascii=False,
        ).encode(),
    }
    for name, data in files.items():
        write_bytes(join(to, name), data)
    return {name: len(data) for name, data in files.items()}


def offsets_of(records: list[Record]) -> dict[str, float]:
    """record id → seconds to subtract from absolute times to get its proxy's time: the segment's start, or,
    when several segments share one proxy of the whole video (offsets mode), that proxy's earliest start."""
    starts: dict[str, list[float]] = defaultdict(list)
    for r in records:
        starts[r.video.proxy_uri or r.id].append(r.video.start_s)
    return {r.id: min(starts[r.video.proxy_uri or r.id]) for r in records}


def _with_offsets(records: list[Record]) -> list[tuple[Record, float]]:
    offsets = offsets_of(records)
    ordered = sorted(records, key=lambda r: (r.video.uri, r.video.start_s))
    return [(r, offsets[r.id]) for r in ordered]


def _task(record: Record, offset: float, fps: float, scope: str, resolve: Resolver, url: str) -> Task:
    start, end = record.video.start_s, record.video.end_s
    data = {
        "video": url,
        "fps": fps,
        "title": f"{Path(record.video.uri).name} · segment {record.video.segment_index} ({start:g}–{end:g} s)",
        "v2s_record": record.id,
        "v2s_video": record.video.video_id,
        "v2s_segment": record.video.segment_index,
        "v2s_scope": scope,
        "v2s_offset_s": offset,
    }
    planned = plan_regions(record, offset, fps, resolve)
    # what each of the record's codes was shown as: the import compares the reviewer's names with these,
    # not with the CPM's names of its own day (a rename in between is no edit of this task)
    data["v2s_shown"] = {
        e.character_id: [p.code, p.name]
        for e, p in zip(_events(record), (p for p in planned if p.kind == EVENT), strict=True)
        if e.character_id and p.code
    }
    results = [r for p in planned for r in prediction_results(p)]
    return Task(data=data, predictions=[Prediction(model_version=MODEL_VERSION, result=results)])


def _events(record: Record) -> list:
    return [e for scene in record.script.script for e in scene.events]


def prediction_results(p: Planned) -> list[Result]:
    """One region's results: the timeline region, then its character and field values."""
    results = [region(p.region_id, p.kind, p.frames)]
    if p.kind == EVENT:
        if p.code:
            results.append(choice_on(p.region_id, choice_value(p.name, p.code), p.frames))
            results.append(text_on(p.region_id, CHARACTER_NAME, p.name, p.frames))
        elif p.name == ENVIRONMENT:
            results.append(choice_on(p.region_id, ENVIRONMENT, p.frames))
        else:  # a name the CPM does not know (no code): shown, not choosable
            results.append(text_on(p.region_id, CHARACTER_NAME, p.name, p.frames))
    results += [text_on(p.region_id, name, text, p.frames) for name, text in p.fields.items()]
    return results


def _scopes(db: Database, records: list[Record]) -> dict[str, str]:
    known = video_scopes(db)
    return {
        r.video.video_id: known.get(r.video.video_id) or r.video.series or r.video.video_id for r in records
    }


def _characters(manager: CharacterProfileManager, scopes: set[str]) -> list[str]:
    values: dict[str, None] = {}
    for scope in sorted(scopes):
        for profile in manager.profiles(scope):
            values[choice_value(profile.display_name, profile.id)] = None
    return list(values)


def _fps(proxy: str) -> float:
    """The proxy's frame rate, the `frameRate` its `<Video>` declares (a bucket proxy is read to probe it)."""
    if is_remote(proxy):
        fs, path = filesystem(proxy)
        info = probe(fs.cat_file(path), name=proxy)
    else:
        info = probe(proxy)
    if info.fps <= 0:
        raise ValueError(f"{proxy}: no frame rate in the video stream, Label Studio needs one")
    return info.fps


def _media_url(out: str, proxy: str, media: MediaSettings) -> str:
    if media.media == "url":
        inside = _inside(out, proxy)
        return f"{media.url_prefix.rstrip('/')}/{quote(inside)}"
    if is_remote(proxy):
        raise ValueError(f"{proxy} is in a bucket: use --media url with a URL prefix Label Studio can load")
    path = Path(proxy).resolve()
    root = Path(media.document_root).resolve()
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not under the document root {root} (--document-root)") from None
    return f"/data/local-files/?d={quote(relative.as_posix())}"


def _inside(out: str, proxy: str) -> str:
    base = str(out).rstrip("/") + "/"
    if is_remote(out) or is_remote(proxy):
        if not proxy.startswith(base):
            raise ValueError(f"{proxy} is not inside {out}: --media url names files relative to OUT")
        return proxy[len(base) :]
    try:
        return Path(proxy).resolve().relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        raise ValueError(f"{proxy} is not inside {out}: --media url names files relative to OUT") from None
