"""OpenAI's Batch API (`/v1/files` + `/v1/batches`) for OpenAI-compatible servers that have it.

OpenAI itself has it; DeepSeek's API has no batch endpoint (404), nor does vLLM's or SGLang's OpenAI server
(vLLM batches offline, with `vllm run-batch` on a JSONL file, not over HTTP). Whether a server has one is asked
once (`GET /v1/batches?limit=1`); without one the stage makes standard calls. Items are JSONL lines keyed by
`custom_id`; results come back in an output file (and failures in an error file), read by `custom_id`.
"""

from __future__ import annotations

import io
import json

import openai
from openai.types.chat import ChatCompletion

from annotator.gateway.base import ModelRequest
from annotator.gateway.batch import BatchItemResult, BatchSnapshot, BatchState, read_item
from annotator.gateway.openai_compat import OpenAICompatBackend

_ENDPOINT = "/v1/chat/completions"
_STATES: dict[str, BatchState] = {
    "completed": "done",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
}  # "cancelling" (and validating, in_progress, finalizing) is still open: its partial output comes once cancelled


class OpenAIBatches:
    """The batch half of the OpenAI-compatible backend (its client, its error mapping)."""

    def __init__(self, backend: OpenAICompatBackend) -> None:
        self.backend = backend
        self.client = backend.client
        self._supported: bool | None = None

    def supports_batches(self) -> bool:
        if self._supported is None:
            try:
                self.client.batches.list(limit=1)
                self._supported = True
            except (openai.NotFoundError, openai.BadRequestError, openai.UnprocessableEntityError):
                self._supported = False
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                raise self.backend.call_error(exc, "batches.list") from None
        return self._supported

    def _call(self, fn, what: str):
        try:
            return fn()
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise self.backend.call_error(exc, what) from None

    def submit_batch(self, model: str, requests: dict[str, ModelRequest], display_name: str) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": key,
                    "method": "POST",
                    "url": _ENDPOINT,
                    "body": self.backend.chat_body(request),
                }
            )
            for key, request in requests.items()
        ]
        data = ("\n".join(lines) + "\n").encode()
        upload = self._call(
            lambda: self.client.files.create(
                file=(f"{display_name}.jsonl", io.BytesIO(data)), purpose="batch"
            ),
            "files.create",
        )
        batch = self._call(
            lambda: self.client.batches.create(
                input_file_id=upload.id,
                endpoint=_ENDPOINT,
                completion_window="24h",
                metadata={"v2s": display_name},
            ),
            "batches.create",
        )
        return batch.id

    def find_batch(self, display_name: str) -> str | None:
        def search() -> str | None:
            for batch in self.client.batches.list(limit=100):
                if (batch.metadata or {}).get("v2s") == display_name and batch.status not in (
                    "failed",
                    "cancelled",
                    "cancelling",
                    "expired",
                ):
                    return batch.id
            return None

        return self._call(search, "batches.list")

    def batch(self, name: str, model: str) -> BatchSnapshot:
        try:
            batch = self.client.batches.retrieve(name)
        except openai.NotFoundError:
            return BatchSnapshot(name=name, state="expired", error=f"{name} no longer exists")
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise self.backend.call_error(exc, "batches.retrieve") from None
        state = _STATES.get(batch.status, "open")
        if state == "open":
            return BatchSnapshot(name=name, state="open")
        errors = [e.message for e in (batch.errors.data if batch.errors and batch.errors.data else [])]
        error = "; ".join(m for m in errors if m) or None
        # An expired or cancelled batch keeps the answers of the items it finished, paid for, in its output file
        # ("partial results (if any) available in the output file"): they are read like a completed batch's,
        # and only the items without one are sent again.
        results: dict[str, BatchItemResult] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for line in self._lines(file_id):
                    item = self._item(line, model)
                    results[item.key] = item
        return BatchSnapshot(
            name=name, state=state, results=results, error=None if state == "done" else error
        )

    def _lines(self, file_id: str) -> list[dict]:
        content = self._call(lambda: self.client.files.content(file_id), "files.content")
        return [json.loads(line) for line in content.text.splitlines() if line.strip()]

    def _item(self, line: dict, model: str) -> BatchItemResult:
        key = str(line.get("custom_id"))
        response = line.get("response") or {}
        if line.get("error") or response.get("status_code") != 200:
            error = line.get("error") or (response.get("body") or {}).get("error") or {}
            message = error.get("message") if isinstance(error, dict) else str(error)
            code = response.get("status_code")
            return BatchItemResult(
                key=key, error=f"batch item failed (HTTP {code}): {message}", outcome="server_error"
            )
        completion = ChatCompletion.model_validate(response["body"])
        return read_item(key, model, lambda request: self.backend.to_response(request, completion))

    def cancel_batch(self, name: str) -> None:
        self._call(lambda: self.client.batches.cancel(name), "batches.cancel")
