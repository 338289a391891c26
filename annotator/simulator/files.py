"""The simulator's Files API store and what it learns from a video's bytes.

Uploads live in memory (segment proxies are small), one `StoredFile` per upload, and behave like Gemini's:
a resumable upload (start → upload chunks → finalize), a `PROCESSING` period (default 0 s) before `ACTIVE`,
and an expiry (`expirationTime`, 48 h by default) after which the file is gone as if deleted. Files the
simulator writes itself (a batch's results, `add_generated`) are `source: GENERATED`, `ACTIVE` at once, and
carry a `downloadUri` (`GET /{v}/files/{id}:download?alt=media`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from annotator.media import MediaError, probe
from annotator.schemas.provenance import TAG, Provenance
from annotator.simulator.errors import SimError

DEFAULT_TTL_S = 48 * 3600.0
CHUNK_GRANULARITY = 8 * 1024 * 1024
# "The File API lets you store up to 20 GB of files per project, with a per-file maximum size of 2 GB"
# (ai.google.dev Files API); the quota error names the project cap in bytes: 21474836480 (alphaXiv/feedback#16)
STORAGE_CAP_BYTES = 20 * 2**30
FILE_MAX_BYTES = 2 * 2**30
_RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"


class UploadError(ValueError):
    """A resumable-upload request that does not fit the upload it names (unknown id, wrong offset)."""


def storage_full(cap: int) -> SimError:
    """Gemini's answer to an upload past the project's storage: a 429 whose QuotaFailure names
    FileStorageBytesPerProject (alphaXiv/feedback#16), with a RetryInfo of int64-max seconds
    (python-genai#1172): waiting does not help, only deleting files or their 48 h expiry does."""
    return SimError(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        f"this error, head to: {_RATE_LIMITS_URL}.\n* Quota exceeded for metric: "
        f"generativelanguage.googleapis.com/file_storage_bytes, limit: {cap}",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/file_storage_bytes",
                        "quotaId": "FileStorageBytesPerProject",
                        "quotaValue": str(cap),
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": _RATE_LIMITS_URL}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9223372036854775807s"},
        ],
    )


def file_too_large(size: int, limit: int) -> SimError:
    """The documented per-file maximum (2 GB); no user report quotes Gemini's text, so this one is the
    simulator's, with the documented status (400 INVALID_ARGUMENT)."""
    return SimError(400, f"The file is {size} bytes; the Files API takes files of at most {limit} bytes.")


@dataclass(frozen=True)
class VideoFacts:
    """What the simulator reads from a video: the v2s provenance tag and what drives token counts."""

    provenance: Provenance | None
    duration_s: float
    has_audio: bool


_facts_cache: OrderedDict[str, VideoFacts] = OrderedDict()
_facts_lock = threading.Lock()


def inspect_video(data: bytes) -> VideoFacts | None:
    """Provenance, duration and audio of a video given as bytes; None when it is not a readable video.

    Cached by content hash: the engine shows the same proxy to the plot and the script stage."""
    key = hashlib.sha256(data).hexdigest()
    with _facts_lock:
        if key in _facts_cache:
            _facts_cache.move_to_end(key)
            return _facts_cache[key]
    try:
        info = probe(data)
    except MediaError:
        return None
    facts = VideoFacts(Provenance.from_tag(info.tags.get(TAG)), info.duration_s, info.has_audio)
    with _facts_lock:
        _facts_cache[key] = facts
        while len(_facts_cache) > 256:
            _facts_cache.popitem(last=False)
    return facts


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    id: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    data: bytearray = field(default_factory=bytearray)
    created: float = 0.0
    finalized: float | None = None
    expires: float = 0.0
    facts: VideoFacts | None = None
    source: str = "UPLOADED"  # GENERATED: written by the simulator (batch results), downloadable

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    def state(self, now: float, processing_s: float) -> str:
        if self.source == "GENERATED":
            return "ACTIVE"
        if self.finalized is None or now < self.finalized + processing_s:
            return "PROCESSING"
        return "ACTIVE" if self.facts is not None or not self.mime_type.startswith("video/") else "FAILED"

    def resource(self, base_url: str, api_version: str, now: float, processing_s: float) -> dict:
        """The `File` resource as the Gemini API returns it (camelCase, int64 as string, RFC 3339 times)."""
        state = self.state(now, processing_s)
        body: dict = {
            "name": self.name,
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.finalized or self.created),
            "expirationTime": rfc3339(self.expires),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": f"{base_url}/{api_version}/{self.name}",
            "state": state,
            "source": self.source,
        }
        if self.source == "GENERATED":
            body["downloadUri"] = f"{base_url}/{api_version}/{self.name}:download?alt=media"
        if self.display_name:
            body["displayName"] = self.display_name
        if state == "ACTIVE" and self.facts is not None:
            body["videoMetadata"] = {"videoDuration": f"{self.facts.duration_s:.3f}s"}
        if state == "FAILED":
            body["error"] = {"code": 400, "message": "the uploaded bytes are not a readable video"}
        return body


class FileStore:
    """Thread-safe in-memory Files API. `processing_s` delays ACTIVE; `ttl_s` sets `expirationTime`."""

    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        processing_s: float = 0.0,
        clock=time.time,
        storage_cap_bytes: int = STORAGE_CAP_BYTES,
        file_max_bytes: int = FILE_MAX_BYTES,
    ) -> None:
        self.ttl_s, self.processing_s, self.clock = ttl_s, processing_s, clock
        # the project's storage and one file's size, as the Files API caps them (tests set small numbers)
        self.storage_cap_bytes, self.file_max_bytes = storage_cap_bytes, file_max_bytes
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, StoredFile] = {}
        self._lock = threading.Lock()
        self.finalized = 0  # uploads completed so far (files deleted since still count)

    # -- resumable upload ------------------------------------------------------------------------------
    def start_upload(
        self, *, name: str | None, display_name: str | None, mime_type: str, size: int | None
    ) -> str:
        """Open an upload session; returns its upload id (goes into the X-Goog-Upload-URL)."""
        now = self.clock()
        file_id = (name or "").removeprefix("files/") or secrets.token_hex(6)
        with self._lock:
            self._purge(now)
            if file_id in self._files:
                raise UploadError(f"a file named files/{file_id} already exists")
            if size is not None:  # the announced size is refused at once, before any byte is sent
                self._check_room(size)
            upload_id = secrets.token_urlsafe(16)
            self._uploads[upload_id] = StoredFile(
                id=file_id,
                display_name=display_name,
                mime_type=mime_type or "application/octet-stream",
                declared_size=size,
                created=now,
                expires=now + self.ttl_s,
            )
            return upload_id

    def append(self, upload_id: str, offset: int, chunk: bytes, *, finalize: bool) -> StoredFile | None:
        """Add a chunk at `offset`; on finalize the file joins the store and is returned."""
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise UploadError(f"no open upload with id {upload_id!r} (finished, or never started)")
            if offset != len(upload.data):
                raise UploadError(
                    f"upload offset {offset} does not match the {len(upload.data)} bytes received"
                )
            upload.data.extend(chunk)
            if not finalize:
                return None
            if upload.declared_size is not None and upload.declared_size != len(upload.data):
                raise UploadError(
                    f"upload finalized with {len(upload.data)} bytes, but {upload.declared_size} were announced"
                )
            del self._uploads[upload_id]
            self._purge(self.clock())
            self._check_room(len(upload.data))  # an upload that announced no size is measured here
        # Probe outside the lock; the file is not visible until it is stored.
        upload.facts = inspect_video(bytes(upload.data)) if upload.mime_type.startswith("video/") else None
        upload.finalized = self.clock()
        with self._lock:
            self._files[upload.id] = upload
            self.finalized += 1
        return upload

    def add_generated(self, data: bytes, mime_type: str, display_name: str | None = None) -> StoredFile:
        """Store a file the simulator wrote (a batch's results): ACTIVE at once, downloadable."""
        now = self.clock()
        stored = StoredFile(
            id=secrets.token_hex(6),
            display_name=display_name,
            mime_type=mime_type,
            declared_size=len(data),
            data=bytearray(data),
            created=now,
            finalized=now,
            expires=now + self.ttl_s,
            source="GENERATED",
        )
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def received(self, upload_id: str) -> int:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise UploadError(f"no open upload with id {upload_id!r}")
            return len(upload.data)

    # -- files -----------------------------------------------------------------------------------------
    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            self._purge(self.clock())
            return self._files.get(file_id.removeprefix("files/"))

    def delete(self, file_id: str) -> bool:
        with self._lock:
            return self._files.pop(file_id.removeprefix("files/"), None) is not None

    def list(self, page_size: int = 10, page_token: str | None = None) -> tuple[list[StoredFile], str | None]:
        """Newest first, like the real API; the page token is the offset."""
        page_size = max(1, min(page_size or 10, 100))
        start = int(page_token) if page_token and page_token.isdigit() else 0
        with self._lock:
            self._purge(self.clock())
            ordered = sorted(self._files.values(), key=lambda f: f.created, reverse=True)
        page = ordered[start : start + page_size]
        more = start + page_size < len(ordered)
        return page, (str(start + page_size) if more else None)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self.clock())
            return len(self._files)

    def used_bytes(self) -> int:
        with self._lock:
            self._purge(self.clock())
            return sum(len(f.data) for f in self._files.values())

    def _check_room(self, size: int) -> None:
        """SimError when a file of `size` bytes is over the per-file maximum or does not fit the project's
        storage (stored files count until deleted or expired). Called with the lock held."""
        if size > self.file_max_bytes:
            raise file_too_large(size, self.file_max_bytes)
        if sum(len(f.data) for f in self._files.values()) + size > self.storage_cap_bytes:
            raise storage_full(self.storage_cap_bytes)

    def _purge(self, now: float) -> None:
        for file_id in [k for k, f in self._files.items() if f.expires <= now]:
            del self._files[file_id]
