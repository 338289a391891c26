"""Gemini's Batch API through google-genai: inlined requests, or a JSONL file through the Files API.

Each item carries its key in `metadata.key` (inlined) or `key` (a JSONL line) and is read back by that key,
never by position. Videos are always uploaded (a file reference per item), so a batch stays far below the
20 MB an inlined batch may weigh; above `batch_inline_max_bytes` of requests, or with `V2S_BATCH_INPUT=file`,
the requests go as a JSONL file, and the results come back as a file to download.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from google.genai import errors, types

from annotator.gateway.base import ModelRequest
from annotator.gateway.batch import BatchItemResult, BatchSnapshot, BatchState, read_item
from annotator.gateway.gemini import GeminiBackend

_STATES: dict[str, BatchState] = {
    "JOB_STATE_SUCCEEDED": "done",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


class GeminiBatches:
    """The batch half of the Gemini backend (it shares the backend's client, uploads and error mapping)."""

    def __init__(self, backend: GeminiBackend) -> None:
        self.backend = backend
        self.client = backend.client
        self.settings = backend.settings

    def supports_batches(self) -> bool:
        return not self.settings.vertex_project  # Vertex AI batches read from GCS or BigQuery, not inline

    def submit_batch(self, model: str, requests: dict[str, ModelRequest], display_name: str) -> str:
        items = {
            key: self.backend.contents_and_config(request, batch=True) for key, request in requests.items()
        }
        inlined = [
            types.InlinedRequest(model=model, contents=contents, config=config, metadata={"key": key})
            for key, (contents, config) in items.items()
        ]
        config = types.CreateBatchJobConfig(display_name=display_name)
        mode = self.settings.batch_input
        if mode == "auto":
            size = sum(len(r.model_dump_json(exclude_none=True)) for r in inlined)
            mode = "inline" if size <= self.settings.batch_inline_max_bytes else "file"
        if mode == "inline":
            src: object = inlined
        else:
            src = self._upload_requests(items, display_name)
        job = self.backend.call(
            lambda: self.client.batches.create(model=model, src=src, config=config), "batches.create"
        )
        return job.name

    def _upload_requests(self, items, display_name: str) -> str:
        """The requests as a JSONL file (one `{"key", "request"}` per line), uploaded; returns its name."""
        with tempfile.TemporaryDirectory(prefix="v2s-batch-") as work:
            path = Path(work) / f"{display_name}.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for key, (contents, config) in items.items():
                    out.write(json.dumps({"key": key, "request": _rest_request(contents, config)}) + "\n")
            upload = types.UploadFileConfig(mime_type="application/jsonl", display_name=display_name)
            file = self.backend.call(
                lambda: self.client.files.upload(file=str(path), config=upload), "upload"
            )
        return file.name

    def find_batch(self, display_name: str) -> str | None:
        def search() -> str | None:
            for job in self.client.batches.list(config=types.ListBatchJobsConfig(page_size=100)):
                if job.display_name == display_name and job.state not in (
                    types.JobState.JOB_STATE_FAILED,
                    types.JobState.JOB_STATE_CANCELLED,
                    types.JobState.JOB_STATE_EXPIRED,
                ):
                    return job.name
            return None

        return self.backend.call(search, "batches.list")

    def batch(self, name: str, model: str) -> BatchSnapshot:
        def get() -> types.BatchJob | None:
            try:
                return self.client.batches.get(name=name)
            except errors.APIError as exc:
                if exc.code == 404:  # deleted, or older than the API keeps: as good as expired
                    return None
                raise

        job = self.backend.call(get, "batches.get")
        if job is None:
            return BatchSnapshot(name=name, state="expired", error=f"{name} no longer exists")
        state = _STATES.get(job.state.value if job.state else "", "open")
        if state != "done":
            error = str(job.error) if getattr(job, "error", None) else None
            return BatchSnapshot(name=name, state=state, error=error)
        return BatchSnapshot(name=name, state="done", results=self._results(job, model))

    def _results(self, job: types.BatchJob, model: str) -> dict[str, BatchItemResult]:
        dest = job.dest
        if dest is not None and dest.file_name:
            data = self.backend.call(
                lambda: self.client.files.download(file=dest.file_name), "files.download"
            )
            lines = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
            pairs = [(str(line.get("key")), line.get("response"), line.get("error")) for line in lines]
            found = [
                (key, types.GenerateContentResponse.model_validate(r) if r else None, e)
                for key, r, e in pairs
            ]
        else:
            found = [
                (str((item.metadata or {}).get("key")), item.response, item.error)
                for item in (dest.inlined_responses if dest else None) or []
            ]
        return {key: self._item(key, response, error, model) for key, response, error in found}

    def _item(self, key: str, response, error, model: str) -> BatchItemResult:
        if response is None:
            text = _error_text(error)
            return BatchItemResult(
                key=key,
                error=f"Gemini batch item failed: {text}",
                outcome="server_error",
                cache_gone=_cache_gone(error, text),
            )
        return read_item(key, model, lambda request: self.backend.to_response(request, response))

    def cancel_batch(self, name: str) -> None:
        self.backend.call(lambda: self.client.batches.cancel(name=name), "batches.cancel")


def _rest_request(contents: list[types.Content], config: types.GenerateContentConfig) -> dict:
    """A GenerateContentRequest as the REST API reads it (a JSONL batch line's `request`)."""
    generation = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    body: dict = {"contents": [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in contents]}
    cached = generation.pop("cachedContent", None)
    if cached:
        body["cachedContent"] = cached
    body["generationConfig"] = generation
    return body


def _cache_gone(error, text: str) -> bool:
    """Whether an item was refused because its context cache no longer exists: Gemini answers a request naming
    an expired or deleted cache 403 "CachedContent not found (or permission denied)" (404 on some paths)."""
    code = error.get("code") if isinstance(error, dict) else getattr(error, "code", None)
    return code in (403, 404) and "cachedcontent" in text.lower()


def _error_text(error) -> str:
    if error is None:
        return "no response and no error"
    if isinstance(error, dict):
        return f"{error.get('code', '')} {error.get('message', '')}".strip()
    return f"{getattr(error, 'code', '') or ''} {getattr(error, 'message', '') or ''}".strip() or str(error)
