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
import os
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from workers.context import VideoSource
from workers.storage import StorageError, file_sha256, filesystem, is_remote

# containers PyAV (FFmpeg) reads; the suffix only picks files out of a folder, the probe judges them
VIDEO_SUFFIXES = {
    ".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv",
    ".m2ts", ".mts", ".m2t", ".mxf", ".3gp", ".3g2", ".ogv", ".vob", ".asf", ".f4v", ".mpe", ".divx",
}  # fmt: skip
MANIFEST_SUFFIXES = {".csv", ".jsonl"}
SIDECAR_SUFFIXES = {".srt", ".vtt"}  # subtitles read with the video beside them, not inputs of their own
MIN_COPY_BYTES = 4096  # smaller files are never compared by content
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


class Skipped(BaseModel):
    """An entry of SOURCE that is not processed, and why (a dangling symlink, an unsupported suffix, a folder
    named like a video, a second path to a file or a copy of one listed already)."""

    uri: str
    reason: str


class Listing(BaseModel):
    videos: list[VideoSource]
    skipped: list[Skipped] = []


def scan_sources(source: str) -> Listing:
    """The videos of SOURCE, each file once, and every entry left out with its reason. Two paths to one file (a
    symlink, a hard link, a manifest row listed twice) or a byte-identical copy are one video, so one set of
    records, under the smallest resolved path among them. Each skipped entry is logged with its reason too."""
    skipped: list[Skipped] = []
    videos = _one_per_file(_list(source, skipped), skipped)
    for entry in skipped:
        log.warning("skipped %s: %s", entry.uri, entry.reason)
    return Listing(videos=videos, skipped=skipped)


def list_sources(source: str) -> list[VideoSource]:
    """`scan_sources` for callers that only want the videos."""
    return scan_sources(source).videos


# how an entry was named in SOURCE (a path as found, a manifest row), and its video
Listed = tuple[str, VideoSource]


def _one_per_file(entries: list[Listed], skipped: list[Skipped]) -> list[VideoSource]:
    videos = [v for _, v in entries]
    canonical: dict[tuple[int, int], str] = {}  # (device, inode) → the smallest resolved path of that file
    for v in videos:
        if not is_remote(v.local_path):
            key = _inode(v.local_path)
            canonical[key] = min(canonical.get(key, v.local_path), v.local_path)
    out: list[VideoSource] = []
    seen: dict[str, VideoSource] = {}
    names: dict[str, str] = {}  # video id → the name its kept entry was listed under
    for name, v in entries:
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
            if name == v.uri and names[v.video_id] != v.uri:  # report the link, not the file it points to
                name, names[v.video_id] = names[v.video_id], name
            reason = f"the same file as {first.uri} (a link to it, or listed twice)"
            skipped.append(Skipped(uri=name, reason=reason))
            continue
        seen[v.video_id], names[v.video_id] = v, name
        out.append(v)
    return _one_per_content(out, skipped)


def _one_per_content(videos: list[VideoSource], skipped: list[Skipped]) -> list[VideoSource]:
    """Drop local files whose bytes equal an earlier one's (a copy). Only files of equal size are read: a
    sample of each first, the whole file only when the samples agree. Files under MIN_COPY_BYTES are left alone:
    no real video is that small (it fails its probe on its own), and placeholders of equal bytes are not copies
    of a film."""
    by_size: dict[int, list[VideoSource]] = {}
    for v in videos:
        size = Path(v.local_path).stat().st_size if not is_remote(v.local_path) else 0
        if size >= MIN_COPY_BYTES:
            by_size.setdefault(size, []).append(v)
    copies: set[str] = set()
    for group in by_size.values():
        kept: dict[str, VideoSource] = {}
        for v in group if len(group) > 1 else ():
            key = _content_key(Path(v.local_path))
            if key in kept:
                copies.add(v.video_id)
                skipped.append(Skipped(uri=v.uri, reason=f"the same content as {kept[key].uri} (a copy)"))
            else:
                kept[key] = v
    return [v for v in videos if v.video_id not in copies]


def _content_key(path: Path, sample: int = 1 << 20) -> str:
    size = path.stat().st_size
    with path.open("rb") as handle:
        parts = [handle.read(sample)]
        handle.seek(max(0, size // 2 - sample // 2))
        parts.append(handle.read(sample))
        handle.seek(max(0, size - sample))
        parts.append(handle.read(sample))
    head = hashlib.sha256(b"".join(parts)).hexdigest()
    return head if size <= 3 * sample else f"{head}:{file_sha256(path)}"


def _inode(path: str) -> tuple[int, int]:
    stat = Path(path).stat()
    return stat.st_dev, stat.st_ino


def _list(source: str, skipped: list[Skipped]) -> list[Listed]:
    if is_remote(source):
        return _list_remote(source)
    path = Path(source)
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return _manifest(
            path.read_text(encoding="utf-8"), path.suffix.lower(), str(path), _LocalBase(path.parent)
        )
    if path.is_file():
        return [(str(path), _local(path))]
    if path.is_dir():
        return _pick(sorted(path.rglob("*")), skipped)
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
    if path.is_symlink() and not path.exists():
        raise SourceError(f"source {source!r} is a dangling symlink (to {os.readlink(path)})")
    picked = _pick(matches, skipped)
    if picked or skipped:
        return picked
    raise SourceError(f"source {source!r} is not a video file, a folder, a glob with matches or a manifest")


def _pick(paths: list[Path], skipped: list[Skipped]) -> list[Listed]:
    """The video files among `paths`; each other entry is reported with its reason, except plain folders and
    the subtitle files read with their video."""
    out = []
    for p in paths:
        reason = _skip_reason(p)
        if reason is None:
            out.append((str(p), _local(p)))
        elif reason:
            skipped.append(Skipped(uri=str(p), reason=reason))
    return out


def _skip_reason(path: Path) -> str | None:
    """None for a video file to list, "" for an entry to pass over silently, else why it is left out."""
    suffix = path.suffix.lower()
    if path.is_symlink() and not path.exists():
        return f"dangling symlink (to {os.readlink(path)})"
    if path.is_dir():
        return "a folder named like a video, not a video file" if suffix in VIDEO_SUFFIXES else ""
    if not path.is_file():
        return "not a regular file"
    if suffix in VIDEO_SUFFIXES:
        return None
    if suffix in SIDECAR_SUFFIXES or path.name.startswith("."):
        return ""
    return f"unsupported suffix {suffix or '(none)'}: not one of the video containers v2s reads"


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


def _named(videos: list[VideoSource]) -> list[Listed]:
    return [(v.uri, v) for v in videos]


def _list_remote(source: str) -> list[Listed]:
    try:
        fs, path = filesystem(source)
        if _GLOB_CHARS & set(path):
            found = fs.glob(path, detail=True)
            return _named([_remote(fs, i) for _, i in sorted(found.items()) if _is_object(i)])
        info = fs.info(path) if fs.exists(path) else None
        if info is not None and _is_object(info):
            if PurePosixPath(path).suffix.lower() in MANIFEST_SUFFIXES:
                text = fs.cat_file(path).decode("utf-8")
                parent = fs.unstrip_protocol(str(PurePosixPath(path).parent))
                return _manifest(text, PurePosixPath(path).suffix.lower(), source, _RemoteBase(parent))
            return _named([_remote(fs, info)])
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
    return _named(videos)


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


def _csv_rows(text: str) -> list[dict]:
    """A manifest as spreadsheets save it: a UTF-8 byte-order mark (Excel's "CSV UTF-8"), `;` or tab as the
    separator (Excel in locales whose decimal mark is a comma), column names in any case."""
    text = text.removeprefix("\ufeff")
    header = text.split("\n", 1)[0]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(header, delimiters=",;\t|")
    except csv.Error:  # one column: nothing to sniff
        dialect = csv.excel
    rows = csv.DictReader(io.StringIO(text), dialect=dialect)
    return [{(k or "").strip().lower(): v for k, v in row.items()} for row in rows]


def _manifest(text: str, suffix: str, where: str, base: _LocalBase | _RemoteBase) -> list[Listed]:
    rows: list[dict] = []
    if suffix == ".csv":
        rows = _csv_rows(text)
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise SourceError(f"{where}:{n}: not JSON ({exc})") from None
    if not rows:
        raise SourceError(f"{where}: the manifest lists no videos")
    out: list[Listed] = []
    for n, row in enumerate(rows, start=1):
        uri = str(row.get("uri") or row.get("path") or "").strip()
        if not uri:
            raise SourceError(f"{where}: row {n} has no 'uri' column")
        episode = row.get("episode")
        try:
            number = int(episode) if episode not in (None, "") else None
        except ValueError:
            raise SourceError(f"{where}: row {n}: episode {episode!r} is not a whole number") from None
        out.append(
            (
                f"{where}: row {n} ({uri})",
                base.resolve(uri, f"{where}: row {n}", row.get("series") or None, number),
            )
        )
    return out
