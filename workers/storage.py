"""Where bytes live: local paths and bucket URIs (s3://, gs://, any fsspec protocol) behind one small API.

Credentials come from each store's usual mechanisms (AWS env vars / profiles / instance roles for s3fs through
botocore; Application Default Credentials for gcsfs). S3-compatible stores (MinIO, Ceph, moto) are reached by
`V2S_S3_ENDPOINT_URL`, or the standard `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` which botocore (and so s3fs)
honours by itself, or fsspec's own `FSSPEC_S3_ENDPOINT_URL`. GCS-compatible endpoints (an emulator, a private
endpoint) are reached by `V2S_GCS_ENDPOINT_URL`, or gcsfs's own `STORAGE_EMULATOR_HOST`; `V2S_GCS_TOKEN=anon` skips
authentication (emulators, public buckets).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import fsspec
from fsspec import AbstractFileSystem
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_PROTOCOLS = {"", "file", "local"}
# `pathlib.Path("s3://b/k")` collapses "//" into "s3:/b/k"; a typed `Path` option does that to a bucket URI.
_MANGLED = re.compile(r"^([a-z][a-z0-9+.-]*):/([^/].*)$")
GCS_PROTOCOLS = {"gs", "gcs"}
# gcsfs's named credential methods ("anon": no authentication, for emulators and public buckets).
GCS_TOKEN_METHODS = {"anon", "google_default", "cloud", "cache"}
_INSTALL_HINT = {"gs": "gcsfs", "gcs": "gcsfs", "s3": "s3fs", "s3a": "s3fs", "az": "adlfs", "abfs": "adlfs"}


class StorageError(ValueError):
    """A URI that cannot be reached or used; the message says why."""


def protocol(uri: str | os.PathLike) -> str:
    text = str(uri)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_remote(uri: str | os.PathLike) -> bool:
    return protocol(uri) not in LOCAL_PROTOCOLS


def normalise(uri: str | os.PathLike) -> str | Path:
    """A bucket URI as a string (repaired if a Path mangled it), anything else as a local Path."""
    text = str(uri)
    mangled = _MANGLED.match(text) if "://" not in text else None
    if (
        mangled
        and mangled.group(1) in fsspec.available_protocols()
        and mangled.group(1) not in LOCAL_PROTOCOLS
    ):
        text = f"{mangled.group(1)}://{mangled.group(2)}"
    if is_remote(text):
        return text.rstrip("/")
    return Path(text.removeprefix("file://"))


class StorageSettings(BaseSettings):
    """Where buckets and the local cache are: read from the environment each time a URI is opened, in this one
    class, because every process (driver and Ray workers alike) opens URIs and a submitted job's workers get the
    same environment through its runtime_env. Credentials stay with the cloud libraries' own chains."""

    # .env as the other settings do: the README documents V2S_S3_ENDPOINT_URL there
    model_config = SettingsConfigDict(
        env_prefix="V2S_", env_file=".env", extra="ignore", populate_by_name=True
    )

    s3_endpoint_url: str | None = None  # an S3-compatible store (MinIO, moto, R2)
    gcs_endpoint_url: str | None = None  # a GCS emulator or GCS-compatible store
    gcs_token: str | None = None  # a gcsfs token method or a service-account key file
    cache_dir: str | None = None  # local scratch for bucket jobs
    storage_emulator_host: str | None = Field(None, validation_alias="STORAGE_EMULATOR_HOST")
    xdg_cache_home: str | None = Field(None, validation_alias="XDG_CACHE_HOME")


def storage_options(proto: str) -> dict:
    """Per-protocol options from the environment (only what the libraries would not pick up themselves)."""
    options: dict = {}
    if proto in {"s3", "s3a"}:
        endpoint = StorageSettings().s3_endpoint_url
        if endpoint:
            options["endpoint_url"] = endpoint
    if proto in GCS_PROTOCOLS:
        endpoint = gcs_endpoint()
        if endpoint:
            options["endpoint_url"] = endpoint
        token = gcs_token()
        if token:
            options["token"] = token
    if proto in {"s3", "s3a", *GCS_PROTOCOLS}:
        # Listings must be fresh: another process (a worker, a previous run) may have written since we looked.
        options["use_listings_cache"] = False
    return options


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of a URI and the path inside it."""
    proto = protocol(uri)
    try:
        options = storage_options(proto)
        if proto in GCS_PROTOCOLS and _gcs_endpoint_is_custom(options):
            return _plain_gcs(uri, options)
        return fsspec.core.url_to_fs(uri, **options)
    except ImportError:
        package = _INSTALL_HINT.get(proto, f"the fsspec backend for {proto}://")
        raise StorageError(
            f"{uri}: reading {proto}:// needs the package {package} (pip install {package})"
        ) from None
    except ValueError as exc:
        raise StorageError(f"{uri}: {exc}") from None


def gcs_endpoint() -> str | None:
    """`V2S_GCS_ENDPOINT_URL`, checked: gcsfs appends `/storage/v1/…` to it, so it must be a bare origin."""
    endpoint = (StorageSettings().gcs_endpoint_url or "").strip()
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path.strip("/") or parts.query:
        raise StorageError(
            f"V2S_GCS_ENDPOINT_URL={endpoint!r} is not an endpoint: expected http(s)://host[:port] with no path"
        )
    return endpoint.rstrip("/")


def gcs_token() -> str | None:
    """`V2S_GCS_TOKEN`: one of gcsfs's named methods or a service-account key file. A raw access token is refused
    (and never echoed): V2S_ settings travel in a cluster job's runtime_env, which Ray logs on the nodes."""
    token = (StorageSettings().gcs_token or "").strip()
    if not token:
        return None
    if token in GCS_TOKEN_METHODS:
        return token
    key_file = Path(token).expanduser()
    if key_file.is_file():
        return str(key_file)
    raise StorageError(
        f"V2S_GCS_TOKEN must be one of {', '.join(sorted(GCS_TOKEN_METHODS))} or the path of a service-account "
        "key file that exists (its value is not shown: it may be a secret)"
    )


def _gcs_endpoint_is_custom(options: dict) -> bool:
    conf = {**fsspec.config.conf.get("gcs", {}), **fsspec.config.conf.get("gs", {})}
    emulator = StorageSettings().storage_emulator_host or ""
    return bool(options.get("endpoint_url") or conf.get("endpoint_url") or emulator not in {"", "default"})


def _plain_gcs(uri: str, options: dict) -> tuple[AbstractFileSystem, str]:
    """gcsfs's JSON-API filesystem, for endpoints other than Google's. The class fsspec registers for gs:// by
    default (gcsfs's zonal/HNS extension) first asks Google's gRPC control plane for the bucket's layout; an
    emulator or a GCS-compatible store does not serve it, and every operation would wait 60 s for that answer."""
    from gcsfs.core import GCSFileSystem

    fs = GCSFileSystem(**options)
    return fs, fs._strip_protocol(uri)


def join(base: str | Path, *parts: str) -> str:
    """Join path parts onto a local folder or a bucket URI."""
    if is_remote(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base).joinpath(*parts))


def sha256_of(handle: BinaryIO) -> str:
    """The hex SHA-256 of what an open binary file holds (read in blocks, never whole): the one content hash of
    proxies, shards and sources."""
    return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return sha256_of(handle)


def inside(uri: str, base: str) -> str:
    """`uri` relative to the folder or bucket prefix `base` when it lies inside it (POSIX separators), else
    unchanged. Records name their proxies this way, so an output moved or copied whole still finds them."""
    if is_remote(uri) or is_remote(base):
        prefix = str(base).rstrip("/") + "/"
        return uri[len(prefix) :] if uri.startswith(prefix) else uri
    try:
        return Path(uri).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return uri


def located(uri: str, base: str) -> str:
    """A relative `uri` (as `inside` makes them) joined to `base`; an absolute path or a URI as it is."""
    if is_remote(uri) or Path(uri).is_absolute():
        return uri
    return join(base, *uri.split("/"))


def unsafe_key_reason(uri: str) -> str | None:
    """Why a bucket key must not be used, or None. Keys are never used as local paths here, but a key with
    `..` segments names a different object on stores that normalise paths, and escapes folders in any tool
    that mirrors the bucket; such an input is refused with this reason (DESIGN.md §8: it fails alone)."""
    key = uri.split("://", 1)[-1]
    if any(part in {"..", "."} for part in key.split("/")):
        return "unsafe object key: it has a '.' or '..' path segment"
    if any(ord(ch) < 32 for ch in key):
        return "unsafe object key: it has control characters"
    return None


def cache_root() -> Path:
    """Local scratch for bucket jobs: $V2S_CACHE_DIR, else $XDG_CACHE_HOME/v2s, else ~/.cache/v2s."""
    settings = StorageSettings()
    if settings.cache_dir:
        return Path(settings.cache_dir)
    return Path(settings.xdg_cache_home or Path.home() / ".cache") / "v2s"


def local_workdir(out: str) -> Path:
    """A local folder that belongs to one bucket output (its default database, staged shards, proxy cache).
    The name keeps a readable part of the URI plus a hash, so two outputs never share a folder."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", out.split("://", 1)[-1]).strip("._")[:60]
    digest = hashlib.sha256(out.rstrip("/").encode()).hexdigest()[:10]
    return cache_root() / "outputs" / f"{readable}-{digest}"


def write_text(uri: str, text: str) -> None:
    """Write a small text object in one piece (an object PUT is atomic; locally: temp file + rename)."""
    if is_remote(uri):
        fs, path = filesystem(uri)
        fs.pipe_file(path, text.encode())
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(target)
