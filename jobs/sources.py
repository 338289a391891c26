"""Listing the videos of a SOURCE (DESIGN.md §8): a file, a folder, a glob or a manifest (CSV/JSONL with series and
episode columns), on the local disk or in a bucket (`s3://bucket/prefix`, `s3://bucket/prefix/*.mp4`, `gs://…`,
and manifests whose URIs are bucket URIs or that live in a bucket themselves).

Listing only names objects; it never judges them. A bad object (corrupt, empty, an unsafe key) is listed like any
other and fails its own video later, with a reason, so one bad input never stops the job.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import logging
from pathlib import Path, PurePosixPath

from workers.context import VideoSource
from workers.storage import StorageError, filesystem, is_remote

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv"}
MANIFEST_SUFFIXES = {".csv", ".jsonl"}
_GLOB_CHARS = set("*?[")
log = logging.getLogger(__name__)


class SourceError(ValueError):
    pass


def video_id(path: Path) -> str:
    """Stable: the same file (path, size, mtime) always gets the same id."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def object_video_id(uri: str, info: dict) -> str:
    """Stable for a bucket object: URI + size + version tag (ETag or generation, else the modification time),
    so an object overwritten with new content is a new video while a relisting gives the same id."""
    version = next(
        (
            info[k]
            for k in ("ETag", "etag", "generation", "md5Hash", "LastModified", "updated", "mtime", "created")
            if info.get(k) is not None
        ),
        "",
    )
    key = f"{uri}|{info.get('size')}|{version}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def list_sources(source: str) -> list[VideoSource]:
    """The videos of SOURCE, each file once: two paths to one file (a symlink, a hard link, a manifest row
    listed twice) are one video, so one set of records, under the smallest resolved path among them."""
    return _one_per_file(_list(source))


def _one_per_file(videos: list[VideoSource]) -> list[VideoSource]:
    canonical: dict[tuple[int, int], str] = {}  # (device, inode) → the smallest resolved path of that file
    for v in videos:
        if not is_remote(v.local_path):
            key = _inode(v.local_path)
            canonical[key] = min(canonical.get(key, v.local_path), v.local_path)
    out: list[VideoSource] = []
    seen: dict[str, VideoSource] = {}
    for v in videos:
        if not is_remote(v.local_path):
            path = canonical[_inode(v.local_path)]
            if path != v.local_path:
                v = v.model_copy(update={"uri": path, "local_path": path, "video_id": video_id(Path(path))})
        first = seen.get(v.video_id)
        if first is not None:
            if (first.scope, first.episode) != (v.scope, v.episode):
                log.warning(
                    "%s is listed twice with different series/episode; kept the first (%s, %s)",
                    v.uri,
                    first.scope,
                    first.episode,
                )
            continue
        seen[v.video_id] = v
        out.append(v)
    if len(out) < len(videos):
        log.info("%d paths point to files listed already; each file is one video", len(videos) - len(out))
    return out


def _inode(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_dev, stat.st_ino


def _list(source: str) -> list[VideoSource]:
    if is_remote(source):
        return _list_remote(source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return _manifest(
            path.read_text(encoding="utf-8"), path.suffix.lower(), str(path), _LocalBase(path.parent)
        )
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


def _remote(fs, info: dict, scope: str | None = None, episode: int | None = None) -> VideoSource:
    uri = fs.unstrip_protocol(info["name"])
    return VideoSource(
        uri=uri, local_path=uri, video_id=object_video_id(uri, info), scope=scope, episode=episode
    )


def _is_object(info: dict) -> bool:
    """A real object, not a folder or the zero-byte "folder marker" some tools create (`prefix/`)."""
    return info.get("type") == "file" and not str(info.get("Key", info["name"])).endswith("/")


def _list_remote(source: str) -> list[VideoSource]:
    try:
        fs, path = filesystem(source)
        if _GLOB_CHARS & set(path):
            found = fs.glob(path, detail=True)
            return [_remote(fs, i) for _, i in sorted(found.items()) if _is_object(i)]
        info = fs.info(path) if fs.exists(path) else None
        if info is not None and _is_object(info):
            if PurePosixPath(path).suffix.lower() in MANIFEST_SUFFIXES:
                text = fs.cat_file(path).decode("utf-8")
                parent = fs.unstrip_protocol(str(PurePosixPath(path).parent))
                return _manifest(text, PurePosixPath(path).suffix.lower(), source, _RemoteBase(parent))
            return [_remote(fs, info)]
        found = fs.find(path, detail=True)
    except StorageError as exc:
        raise SourceError(str(exc)) from None
    except (OSError, ValueError) as exc:  # missing bucket, denied access, bad endpoint: say which
        raise SourceError(f"source {source!r} cannot be listed ({type(exc).__name__}: {exc})") from None
    videos = [
        _remote(fs, i)
        for _, i in sorted(found.items())
        if _is_object(i) and PurePosixPath(i["name"]).suffix.lower() in VIDEO_SUFFIXES
    ]
    if not videos:
        raise SourceError(
            f"source {source!r} has no video objects (suffixes {', '.join(sorted(VIDEO_SUFFIXES))})"
        )
    return videos


class _LocalBase:
    """Resolves a local manifest's rows: relative paths against its folder; bucket URIs as they are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.remote = _RemoteObjects()

    def resolve(self, uri: str, where: str, scope: str | None, episode: int | None) -> VideoSource:
        if is_remote(uri):
            return self.remote.resolve(uri, where, scope, episode)
        target = Path(uri) if Path(uri).is_absolute() else self.folder / uri
        if not target.is_file():
            raise SourceError(f"{where}: {uri} does not exist")
        return _local(target, scope, episode)


class _RemoteBase:
    """Resolves the rows of a manifest that lives in a bucket: relative keys against its prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.remote = _RemoteObjects()

    def resolve(self, uri: str, where: str, scope: str | None, episode: int | None) -> VideoSource:
        if not is_remote(uri):
            if Path(uri).is_absolute():
                raise SourceError(f"{where}: {uri} is a local path in a manifest that lives in a bucket")
            uri = f"{self.prefix}/{uri}"
        return self.remote.resolve(uri, where, scope, episode)


class _RemoteObjects:
    """Looks rows up by listing each parent prefix once (one LIST per folder instead of one HEAD per row)."""

    def __init__(self) -> None:
        self.listings: dict[str, dict[str, dict]] = {}

    def resolve(self, uri: str, where: str, scope: str | None, episode: int | None) -> VideoSource:
        try:
            fs, path = filesystem(uri)
            parent = str(PurePosixPath(path).parent)
            key = f"{fs.protocol}:{parent}"
            if key not in self.listings:
                try:
                    self.listings[key] = {i["name"]: i for i in fs.ls(parent, detail=True)}
                except FileNotFoundError:
                    self.listings[key] = {}
            info = self.listings[key].get(path) or (fs.info(path) if fs.exists(path) else None)
        except StorageError as exc:
            raise SourceError(f"{where}: {exc}") from None
        if info is None or not _is_object(info):
            raise SourceError(f"{where}: {uri} does not exist")
        return _remote(fs, info, scope, episode)


def _manifest(text: str, suffix: str, where: str, base: _LocalBase | _RemoteBase) -> list[VideoSource]:
    rows: list[dict] = []
    if suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise SourceError(f"{where}:{n}: not JSON ({exc})") from None
    out = []
    for n, row in enumerate(rows, start=1):
        uri = str(row.get("uri") or row.get("path") or "").strip()
        if not uri:
            raise SourceError(f"{where}: row {n} has no 'uri' column")
        episode = row.get("episode")
        try:
            number = int(episode) if episode not in (None, "") else None
        except ValueError:
            raise SourceError(f"{where}: row {n}: episode {episode!r} is not a whole number") from None
        out.append(base.resolve(uri, f"{where}: row {n}", row.get("series") or None, number))
    return out
