"""OpenAI's Files and Batch APIs for chat completions, as the simulator plays them (openai SDK unchanged).

`POST /v1/files` (multipart, `purpose=batch`, JSONL lines `{"custom_id", "method": "POST",
"url": "/v1/chat/completions", "body"}`), `GET /v1/files/{id}[/content]`, `DELETE /v1/files/{id}`;
`POST /v1/batches`, `GET /v1/batches[/{id}]`, `POST /v1/batches/{id}/cancel`. A batch is `validating`, then
`in_progress`, then `completed` on the same `BatchPlay` timing as Gemini's (batches.py); its items are
answered through `SimulatorServer.answer` exactly as chat completions, the answers in `output_file_id`, the
failed items (a behaviour's fault) in `error_file_id`. `SimulatorServer(openai_batches=False)` (or
V2S_SIM_OPENAI_BATCHES=0) answers these paths 404, as DeepSeek does: it has no batch endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING

from annotator.simulator import openai_api
from annotator.simulator.batch_store import FINAL, Batch, BatchItem, jsonl_objects
from annotator.simulator.errors import SimError, invalid
from annotator.simulator.openai_api import parse_chat
from annotator.simulator.prompt_reader import Stage, detect_stage

if TYPE_CHECKING:
    from annotator.simulator.server import Result, SimulatorServer

log = logging.getLogger(__name__)

ITEM_ENDPOINT = "batch.chat.completions"  # the record of one answered item
ENV_OPENAI_BATCHES = "V2S_SIM_OPENAI_BATCHES"
CHAT_URL = "/v1/chat/completions"
WINDOW_S = 24 * 3600
_STATUS = {
    "pending": "validating",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
}
_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def openai_batches_from_env(env: Mapping[str, str] | None = None) -> bool:
    """V2S_SIM_OPENAI_BATCHES: 0/false/no/off answers /v1/files and /v1/batches 404 (DeepSeek); default on."""
    value = ((os.environ if env is None else env).get(ENV_OPENAI_BATCHES) or "").strip().lower()
    return value not in ("0", "false", "no", "off")


@dataclass
class OpenAIFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def resource(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }


class OpenAIFileStore:
    """OpenAI's files (uploaded batch inputs, generated outputs), in memory, apart from Gemini's Files API."""

    def __init__(self) -> None:
        self.files: dict[str, OpenAIFile] = {}
        self._lock = threading.Lock()

    def add(self, filename: str, purpose: str, data: bytes) -> OpenAIFile:
        stored = OpenAIFile(f"file-{secrets.token_hex(12)}", filename, purpose, data, int(time.time()))
        with self._lock:
            self.files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> OpenAIFile | None:
        with self._lock:
            return self.files.get(file_id)

    def delete(self, file_id: str) -> bool:
        with self._lock:
            return self.files.pop(file_id, None) is not None


def parse_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (filename, bytes)} of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise invalid("the upload must be multipart/form-data with a boundary")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def parse_lines(data: bytes, where: str, endpoint: str = CHAT_URL) -> list[BatchItem]:
    """The items of a batch input file; SimError 400 naming the first bad line."""
    items: list[BatchItem] = []
    seen: set[str] = set()
    for at, entry in jsonl_objects(data, where, '{"custom_id", "method", "url", "body"}'):
        custom_id = entry.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise invalid(f"{at}: custom_id is missing")
        if custom_id in seen:
            raise invalid(f"{at}: custom_id {custom_id!r} is not unique in the file")
        if entry.get("url") != endpoint:
            raise invalid(f"{at}: url {entry.get('url')!r} is not {endpoint!r}, the batch endpoint")
        if str(entry.get("method") or "POST").upper() != "POST":
            raise invalid(f"{at}: method must be POST")
        try:
            parse_chat(entry.get("body"))
        except SimError as error:
            raise invalid(f"{at}: {error.message}") from None
        seen.add(custom_id)
        items.append(BatchItem(custom_id, entry["body"]))
    return items


def chat_body(model: str, result: Result) -> dict:
    """The chat completion JSON of an answer."""
    return openai_api.chat_response(
        result.text,
        model,
        result.usage,
        reasoning=result.answer.reasoning,
        finish_reason=result.fault.finish_reason or "stop",
        empty=result.fault.empty,
        blocked=result.fault.blocked is not None,
        tier=result.tier,
    )


def answer_item(sim: SimulatorServer, body: dict) -> tuple[int, dict]:
    """(200, chat completion) or (status, error body) for one batch item."""
    stage: Stage | None = None
    model = str(body.get("model") or "")
    try:
        request = parse_chat(body)
        request.service_tier = None  # batch items are batch-tier, never flex
        stage = detect_stage(request.schema_title, request.texts, has_video=request.video is not None)
        result = sim.answer("openai", request.model, stage, request, batch=True)
        response = chat_body(request.model, result)
    except SimError as error:
        sim.record(ITEM_ENDPOINT, stage.value if stage else None, error.code, model)
        return error.code, openai_api.error_body(error)
    except Exception as exc:  # a simulator bug: the item fails, the batch goes on
        log.error("simulator error on a batch item:\n%s", traceback.format_exc())
        sim.record(ITEM_ENDPOINT, stage.value if stage else None, 500, model)
        return 500, openai_api.error_body(SimError(500, f"v2s simulator bug: {type(exc).__name__}: {exc}"))
    sim.record(ITEM_ENDPOINT, stage.value, 200, model, result.start_s, result.end_s)
    return 200, response


def run_openai(sim: SimulatorServer, batch: Batch, count: int) -> None:
    """Answer the first `count` items (fewer than all: an expired or cancelled batch's finished ones);
    successes go to the output file, failures to the error file."""
    results = []
    for item in batch.items[:count]:
        status, body = answer_item(sim, item.request)
        results.append(
            {
                "id": f"batch_req_{secrets.token_hex(12)}",
                "custom_id": item.key,
                "response": {
                    "status_code": status,
                    "request_id": f"req_{secrets.token_hex(12)}",
                    "body": body,
                },
                "error": None,
            }
        )
    good = [r for r in results if r["response"]["status_code"] == 200]
    bad = [r for r in results if r["response"]["status_code"] != 200]
    files = {}
    for lines, kind in ((good, "output"), (bad, "error")):
        if lines:
            data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode()
            files[kind] = sim.openai_files.add(f"{batch.id}_{kind}.jsonl", "batch_output", data).id
    batch.output_file, batch.error_file = files.get("output"), files.get("error")
    batch.results = results
    batch.succeeded, batch.failed = len(good), len(bad)


def batch_object(batch: Batch, now: float, *, status: str | None = None) -> dict:
    """The Batch object as OpenAI returns it (unix seconds, null for what has not happened)."""
    phase = batch.phase(now)
    ended = int(batch.ended) if batch.ended is not None else None
    started = phase == "running" or (phase in FINAL and (batch.ended or 0) >= batch.running_at)
    expiry = batch.play.expire_after_s
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": CHAT_URL,
        "model": batch.model or None,
        "errors": None,
        "input_file_id": batch.input_file,
        "completion_window": "24h",
        "status": status or _STATUS[phase],
        "output_file_id": batch.output_file,
        "error_file_id": batch.error_file,
        "created_at": int(batch.created),
        "in_progress_at": int(batch.running_at) if started else None,
        "expires_at": int(batch.created + (expiry if expiry is not None else WINDOW_S)),
        "finalizing_at": int(batch.ready_at) if phase == "succeeded" else None,
        "completed_at": ended if phase == "succeeded" else None,
        "failed_at": ended if phase == "failed" else None,
        "expired_at": ended if phase == "expired" else None,
        "cancelling_at": ended if phase == "cancelled" else None,
        "cancelled_at": ended if phase == "cancelled" and status is None else None,
        "request_counts": {"total": len(batch.items), "completed": batch.succeeded, "failed": batch.failed},
        "metadata": batch.metadata,
    }


class OpenAIBatchEndpoints:
    """The OpenAI files and batches routes of the simulator's HTTP handler (a mixin of `http_handler.Handler`)."""

    def _openai_batch_route(self, method: str, parts: list[str]):
        """(endpoint, handler) for /v1/files… and /v1/batches…, or None."""
        kind, rest = parts[1], parts[2:]
        routes = {
            ("files", 0, "POST"): ("files.upload", self._oa_files_create),
            ("files", 1, "GET"): ("files.get", self._oa_files_get),
            ("files", 1, "DELETE"): ("files.delete", self._oa_files_delete),
            ("files", 2, "GET"): ("files.download", self._oa_files_content),
            ("batches", 0, "POST"): ("batches.create", self._oa_batches_create),
            ("batches", 0, "GET"): ("batches.list", self._oa_batches_list),
            ("batches", 1, "GET"): ("batches.get", self._oa_batches_get),
            ("batches", 2, "POST"): ("batches.cancel", self._oa_batches_cancel),
        }
        if len(rest) == 2 and rest[1] != {"files": "content", "batches": "cancel"}[kind]:
            return None
        route = routes.get((kind, len(rest), method))
        if route is None:
            return None
        self._oa_id = rest[0] if rest else ""
        if not self.sim.openai_batches:
            return route[0], self._oa_not_found
        return route

    def _oa_not_found(self, raw: bytes, query: dict) -> None:
        self._reply(404, {"error": {"message": "Not Found", "type": "invalid_request_error"}})

    def _oa_run(self, batch: Batch, count: int) -> None:
        run_openai(self.sim, batch, count)

    def _oa_file(self) -> object:
        stored = self.sim.openai_files.get(self._oa_id)
        if stored is None:
            raise SimError(404, f"No such File object: {self._oa_id}")
        return stored

    def _oa_batch(self) -> Batch:
        batch = self.sim.batches.get(self._oa_id, "openai")
        if batch is None:
            raise SimError(404, f"No batch found with id '{self._oa_id}'.")
        self._model = batch.model or None
        return batch

    # -- files ---------------------------------------------------------------------------------------------
    def _oa_files_create(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        fields = parse_multipart(self.headers.get("Content-Type") or "", raw)
        purpose = fields.get("purpose", (None, b""))[1].decode().strip()
        if purpose not in _PURPOSES:
            raise invalid(f"purpose {purpose!r} is not one of {', '.join(_PURPOSES)}")
        if "file" not in fields:
            raise invalid("the upload has no `file` part")
        filename, data = fields["file"]
        if purpose == "batch":
            parse_lines(data, filename or "the file")
        self._reply(200, self.sim.openai_files.add(filename or "upload", purpose, data).resource())

    def _oa_files_get(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        self._reply(200, self._oa_file().resource())

    def _oa_files_delete(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        self._oa_file()
        self.sim.openai_files.delete(self._oa_id)
        self._reply(200, {"id": self._oa_id, "object": "file", "deleted": True})

    def _oa_files_content(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        self._reply_bytes(self._oa_file().data, "application/octet-stream")

    # -- batches -------------------------------------------------------------------------------------------
    def _oa_batches_create(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        body = self._json(raw)
        if not isinstance(body, dict):
            raise invalid("the request body must be a JSON object")
        if body.get("endpoint") != CHAT_URL:
            raise invalid(f"endpoint {body.get('endpoint')!r} is not simulated; use {CHAT_URL!r}")
        if body.get("completion_window") != "24h":
            raise invalid("completion_window must be '24h'")
        stored = self.sim.openai_files.get(str(body.get("input_file_id") or ""))
        if stored is None:
            raise invalid(f"input_file_id {body.get('input_file_id')!r}: no such file")
        items = parse_lines(stored.data, stored.id)
        model = str(items[0].request.get("model") or "")
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        bid = f"batch_{secrets.token_hex(12)}"
        # an expired or cancelled OpenAI batch keeps what it finished: "partial results (if any) available in
        # the output file" (the API reference, cancel batch)
        batch = self.sim.batches.add(
            bid, "openai", model, "", items, input_file=stored.id, metadata=metadata, keeps_partial=True
        )
        self._model = model or None
        self._reply(200, batch_object(batch, time.time()))

    def _oa_batches_get(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        batch = self.sim.batches.settle(self._oa_batch(), self._oa_run)
        self._reply(200, batch_object(batch, time.time()))

    def _oa_batches_list(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        limit = max(1, min(int(query["limit"]) if query.get("limit", "").isdigit() else 20, 100))
        mine = self.sim.batches.of("openai")
        ids = [b.id for b in mine]
        start = ids.index(query["after"]) + 1 if query.get("after") in ids else 0
        page = [self.sim.batches.settle(b, self._oa_run) for b in mine[start : start + limit]]
        now = time.time()
        self._reply(
            200,
            {
                "object": "list",
                "data": [batch_object(b, now) for b in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": start + limit < len(mine),
            },
        )

    def _oa_batches_cancel(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        batch = self._oa_batch()
        live = batch.state not in FINAL
        self.sim.batches.cancel(batch, self._oa_run)
        cancelling = live and batch.state == "cancelled"  # the cancel call answers `cancelling`, as OpenAI's
        self._reply(200, batch_object(batch, time.time(), status="cancelling" if cancelling else None))
