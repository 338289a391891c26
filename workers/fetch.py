"""Local copies of bucket objects for the tools that need a file (PyAV, PySceneDetect, ffmpeg).

- A source video in a bucket is downloaded into the cache before it is probed and cut, and removed after.
  Its local name comes from the video id, never from the object key, so no key can place a file outside
  the cache (a key with `..` segments is refused outright, see `storage.unsafe_key_reason`).
- Proxies of a bucket output are cut locally, uploaded to OUT/proxies/, and kept in the cache, because the plot
  and script stages read them again; a worker on another node downloads them once into its own cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from annotator.media import MediaError, probe
from workers.context import VideoSource
from workers.storage import (
    StorageError,
    cache_root,
    file_sha256,
    filesystem,
    is_remote,
    join,
    unsafe_key_reason,
)

log = logging.getLogger(__name__)


class FetchError(MediaError):
    """A bucket input that cannot be fetched; it fails its video only, with this message as the reason."""


def _suffix(uri: str) -> str:
    """The object's extension if it is a plain one (ffmpeg guesses containers from it), else `.bin`."""
    suffix = Path(uri.rsplit("/", 1)[-1]).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"


def _download(uri: str, target: Path) -> None:
    """Download to a temp name beside `target`, then rename: a half-written file is never seen as complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        fs, path = filesystem(uri)
        fs.get_file(path, str(partial))
        partial.replace(target)
    except FileNotFoundError:
        raise FetchError(f"{uri}: object does not exist (deleted after it was listed?)") from None
    except StorageError as exc:
        raise FetchError(str(exc)) from None
    except Exception as exc:  # botocore/aiohttp/gcsfs errors have no common base; the reason is kept
        raise FetchError(f"{uri}: download failed ({type(exc).__name__}: {exc})") from None
    finally:
        partial.unlink(missing_ok=True)


def local_copy(video: VideoSource) -> Path:
    """The file to probe and cut: the local path itself, or a fresh download of the bucket object."""
    if not is_remote(video.local_path):
        return Path(video.local_path)
    reason = unsafe_key_reason(video.uri)
    if reason:
        raise FetchError(f"{video.uri}: {reason}")
    target = cache_root() / "fetch" / f"{video.video_id}-{os.getpid()}{_suffix(video.uri)}"
    _download(video.local_path, target)
    return target


def release_copy(video: VideoSource, path: Path | None) -> None:
    """Remove a downloaded source video once its proxies are cut (local inputs are left alone)."""
    if path is not None and is_remote(video.local_path):
        path.unlink(missing_ok=True)


def _proxy_cache(uri: str) -> Path:
    return cache_root() / "proxies" / f"{hashlib.sha256(uri.encode()).hexdigest()[:24]}.mp4"


def proxy_present(uri: str | None) -> bool:
    """Cheap: the proxy object exists and is not empty (a skipped video's proxies are not probed)."""
    if not uri:
        return False
    if not is_remote(uri):
        path = Path(uri)
        return path.is_file() and path.stat().st_size > 0
    fs, path = filesystem(uri)
    try:
        return fs.exists(path) and int(fs.info(path).get("size") or 0) > 0
    except FileNotFoundError:
        return False


ProxyCheck = Callable[[Path], str | None]  # why a proxy file is not the one wanted; None when it is


def _proxy_ok(path: Path, check: ProxyCheck | None) -> bool:
    """A proxy is reused only when it probes as a whole video and passes `check` (its span and sound); a
    cut-off, corrupt or misplaced one is cut again."""
    try:
        probe(path)
    except MediaError:
        return False
    problem = check(path) if check is not None else None
    if problem is not None:
        log.warning("cutting the proxy again: %s", problem)
    return problem is None


def ensure_proxy(
    out_dir: str, video_id: str, idx: int, make: Callable[[Path], object], check: ProxyCheck | None = None
) -> str:
    """The URI of a segment's proxy under OUT/proxies/, calling `make(local_path)` when it is missing, broken or
    fails `check`. `make` writes under a name of its own and renames, so two writers never share a partial file."""
    uri = join(out_dir, "proxies", video_id, f"seg_{idx:04d}.mp4")
    if not is_remote(out_dir):
        if not (Path(uri).exists() and _proxy_ok(Path(uri), check)):
            make(Path(uri))
        return uri
    fs, path = filesystem(uri)
    local = _proxy_cache(uri)
    if proxy_present(uri) and (_proxy_ok(local, check) if local.exists() else _fetched_ok(uri, local, check)):
        return uri
    make(local)
    fs.put_file(str(local), path)
    return uri


def _fetched_ok(uri: str, local: Path, check: ProxyCheck | None) -> bool:
    """A bucket proxy is checked where it will be used: downloaded into the cache once and probed."""
    _download(uri, local)
    if _proxy_ok(local, check):
        return True
    local.unlink(missing_ok=True)
    return False


def local_proxy(proxy_uri: str) -> Path:
    """A proxy as a local file: itself, or the cached copy of the bucket object (downloaded once per node)."""
    if not is_remote(proxy_uri):
        return Path(proxy_uri)
    local = _proxy_cache(proxy_uri)
    if not local.exists():
        _download(proxy_uri, local)
    return local


def proxy_sha256(path: Path) -> str:
    """The proxy's content hash, computed once per file version in this process (in offsets mode every segment
    of a video shows the same, whole-video proxy)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)
