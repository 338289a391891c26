"""Listing the videos of a SOURCE: a file, a folder, a glob or a manifest (CSV/JSONL with series/episode)."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
from pathlib import Path

from workers.context import VideoSource

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv"}


class SourceError(ValueError):
    pass


def video_id(path: Path) -> str:
    """Stable: the same file (path, size, mtime) always gets the same id."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def list_sources(source: str) -> list[VideoSource]:
    path = Path(source)
    if path.is_file() and path.suffix.lower() in {".csv", ".jsonl"}:
        return _manifest(path)
    if path.is_file():
        return [_local(path)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        return [_local(p) for p in files]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
    if matches:
        return [_local(p) for p in matches]
    raise SourceError(f"source {source!r} is not a video file, a folder, a glob with matches or a manifest")


def _local(path: Path, scope: str | None = None, episode: int | None = None) -> VideoSource:
    return VideoSource(
        uri=str(path.resolve()),
        local_path=str(path.resolve()),
        video_id=video_id(path),
        scope=scope,
        episode=episode,
    )


def _manifest(path: Path) -> list[VideoSource]:
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise SourceError(f"{path}:{n}: not JSON ({exc})") from None
    out = []
    for n, row in enumerate(rows, start=1):
        uri = (row.get("uri") or row.get("path") or "").strip()
        if not uri:
            raise SourceError(f"{path}: row {n} has no 'uri' column")
        target = (path.parent / uri) if not Path(uri).is_absolute() else Path(uri)
        if not target.is_file():
            raise SourceError(f"{path}: row {n}: {uri} does not exist")
        episode = row.get("episode")
        out.append(
            _local(target, row.get("series") or None, int(episode) if episode not in (None, "") else None)
        )
    return out
