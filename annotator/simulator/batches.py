"""Gemini's Batch API (`batchGenerateContent`) as the simulator plays it: create, get, list, cancel, delete.

A batch is created with its requests inlined (`inputConfig.requests.requests[]`) or as a JSONL file uploaded
through the Files API (`inputConfig.fileName`, lines `{"key", "request"}`), and answered as an Operation:
PENDING for `BatchPlay.pending_s`, RUNNING for `running_s` more, then SUCCEEDED (computed lazily, once, on
the first read after that time). Every item is answered through `SimulatorServer.answer` exactly as a
`generateContent` of the same request would be (same text, same usage); a fault a behaviour plays for one
item becomes that item's `error`, the others succeed. Inlined batches return `inlinedResponses` in request
order; file batches a generated results file (`responsesFile`, downloadable with
`GET /{v}/files/{id}:download?alt=media`). `BatchPlay.expire_after_s` makes slow batches EXPIRED.
The OpenAI Batch API (openai_batches.py) keeps its batches in the same `BatchStore` (batch_store.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import traceback
from typing import TYPE_CHECKING

from annotator.simulator import gemini_api
from annotator.simulator.batch_store import FINAL, Batch, BatchItem, jsonl_objects
from annotator.simulator.caches import Cache, merged
from annotator.simulator.errors import SimError, invalid
from annotator.simulator.files import rfc3339
from annotator.simulator.gemini_api import GenerateRequest, parse_generate
from annotator.simulator.prompt_reader import Stage, detect_stage
from annotator.simulator.served import served_gemini_model

if TYPE_CHECKING:
    from annotator.simulator.server import Result, SimulatorServer

log = logging.getLogger(__name__)

ITEM_ENDPOINT = "batch.generateContent"  # the record of one answered item
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_INPUT_MIME = ("application/jsonl", "application/json", "application/x-ndjson", "text/plain")
_NOT_FOUND = "Requested entity was not found."


# -- one generateContent, as the endpoint and a batch item both answer it ---------------------------------
def prepare_generate(
    sim: SimulatorServer, model: str, request: GenerateRequest
) -> tuple[GenerateRequest, Cache | None, Stage]:
    """The request with its cachedContent merged in, the cache, and the stage it asks for."""
    cache = sim.caches.get(request.cached_content) if request.cached_content else None
    if cache is not None:
        request = merged(request, cache, model)
    return (
        request,
        cache,
        detect_stage(request.schema_title, request.texts, has_video=request.video is not None),
    )


def generate_body(sim: SimulatorServer, model: str, result: Result, cache: Cache | None) -> dict:
    """The GenerateContentResponse JSON of an answer."""
    return gemini_api.generate_response(
        result.text,
        served_gemini_model(model),  # modelVersion: what answered (an alias names its target here)
        result.usage,
        cached_tokens=sim.cache_tokens(cache) if cache is not None else 0,
        finish_reason=result.fault.finish_reason or "STOP",
        empty=result.fault.empty,
        blocked=result.fault.blocked,
        tier=result.tier,
        thoughts=result.usage.reasoning if result.fault.exhaust_output else 0,
    )


def answer_item(sim: SimulatorServer, model: str, body: dict) -> tuple[str, dict]:
    """("response", GenerateContentResponse) or ("error", {code, message, status}) for one batch item."""
    stage: Stage | None = None
    try:
        request = parse_generate(body)
        request.service_tier = None  # batch items are batch-tier, never flex
        request, cache, stage = prepare_generate(sim, model, request)
        result = sim.answer("gemini", model, stage, request, batch=True)
        response = generate_body(sim, model, result, cache)
    except SimError as error:
        sim.record(ITEM_ENDPOINT, stage.value if stage else None, error.code, model)
        return "error", gemini_api.error_body(error)["error"]
    except Exception as exc:  # a simulator bug: the item fails, the batch goes on
        log.error("simulator error on a batch item:\n%s", traceback.format_exc())
        error = SimError(500, f"v2s simulator bug: {type(exc).__name__}: {exc}")
        sim.record(ITEM_ENDPOINT, stage.value if stage else None, 500, model)
        return "error", gemini_api.error_body(error)["error"]
    sim.record(ITEM_ENDPOINT, stage.value, 200, model, result.start_s, result.end_s)
    return "response", response


def run_gemini(sim: SimulatorServer, batch: Batch, count: int) -> None:
    """Answer the first `count` items (all of them: a Gemini batch keeps no partial results); file batches get
    their results as a generated JSONL file."""
    results = []
    for item in batch.items[:count]:
        kind, body = answer_item(sim, batch.model, item.request)
        if batch.input_file is None:
            results.append({kind: body, **({"metadata": item.metadata} if item.metadata is not None else {})})
        else:
            results.append({"key": item.key, kind: body})
    if batch.input_file is not None:
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in results).encode()
        batch.output_file = sim.files.add_generated(
            data, "application/jsonl", f"batch-{batch.id}-results"
        ).name
    batch.results = results
    batch.failed = sum("error" in r for r in results)
    batch.succeeded = len(results) - batch.failed


# -- reading a create call -----------------------------------------------------------------------------------
def parse_create(sim: SimulatorServer, body: object) -> tuple[str, list[BatchItem], str | None]:
    """(display name, items, input file name) of a batchGenerateContent body; SimError 400 when malformed."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object with `batch`")
    batch = body.get("batch") if isinstance(body.get("batch"), dict) else body
    config = batch.get("inputConfig") or batch.get("input_config") or {}
    if not isinstance(config, dict):
        raise invalid("batch.inputConfig must be an object")
    display = str(batch.get("displayName") or batch.get("display_name") or "")
    file_name = config.get("fileName") or config.get("file_name")
    if file_name:
        return display, _file_items(sim, str(file_name)), f"files/{str(file_name).removeprefix('files/')}"
    requests = (
        (config.get("requests") or {}).get("requests") if isinstance(config.get("requests"), dict) else None
    )
    if not requests:
        raise invalid("* BatchGenerateContentRequest.batch.input_config: the batch has no requests")
    items = []
    for i, entry in enumerate(requests):
        where = f"batch.inputConfig.requests.requests[{i}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        metadata = entry.get("metadata") if isinstance(entry, dict) else None
        items.append(_item(request, metadata, where, str(i)))
    return display, items, None


def _file_items(sim: SimulatorServer, name: str) -> list[BatchItem]:
    stored = sim.files.get(name)
    if stored is None:
        raise SimError(403, f"You do not have permission to access the File {name} or it may not exist.")
    if stored.state(time.time(), sim.files.processing_s) != "ACTIVE":
        raise SimError(400, f"The File {stored.id} is not in an ACTIVE state.", status="FAILED_PRECONDITION")
    mime = stored.mime_type.split(";")[0].strip().lower()
    if mime not in _INPUT_MIME:
        raise invalid(f"{stored.name} is {mime}; a batch input file is JSONL (application/jsonl)")
    items: list[BatchItem] = []
    shape = '{"key": ..., "request": {...}}'
    for where, entry in jsonl_objects(bytes(stored.data), stored.name, shape):
        key = entry.get("key")
        items.append(
            _item(entry.get("request"), None, where, str(key) if key is not None else str(len(items)))
        )
    return items


def _item(request: object, metadata: object, where: str, default_key: str) -> BatchItem:
    if not isinstance(request, dict):
        raise invalid(f"{where}: `request` must be a GenerateContentRequest object")
    try:
        parse_generate(request)
    except SimError as error:
        raise invalid(f"{where}: {error.message}") from None
    meta = metadata if isinstance(metadata, dict) else None
    key = meta.get("key") if meta else None
    return BatchItem(str(key) if key is not None else default_key, request, meta)


# -- the Operation -------------------------------------------------------------------------------------------
def operation(batch: Batch, now: float) -> dict:
    """The batch as Gemini returns it: an Operation whose metadata is the GenerateContentBatch."""
    phase = batch.phase(now)
    done = phase in FINAL
    total = str(len(batch.items))
    stats = {"requestCount": total}
    if done:
        stats.update(successfulRequestCount=str(batch.succeeded), failedRequestCount=str(batch.failed))
    else:
        stats["pendingRequestCount"] = total
    updated = batch.ended if done else (batch.running_at if phase == "running" else batch.created)
    meta: dict = {
        "@type": _TYPE + "GenerateContentBatch",
        "name": f"batches/{batch.id}",
        "model": f"models/{batch.model}",
        "state": f"BATCH_STATE_{phase.upper()}",
        "createTime": rfc3339(batch.created),
        "updateTime": rfc3339(updated or batch.created),
        "batchStats": stats,
    }
    if batch.display_name:
        meta["displayName"] = batch.display_name
    if batch.input_file:
        meta["inputConfig"] = {"fileName": batch.input_file}
    if done and batch.ended is not None:
        meta["endTime"] = rfc3339(batch.ended)
    op: dict = {"name": f"batches/{batch.id}", "metadata": meta, "done": done}
    if phase == "succeeded":
        if batch.input_file is not None:
            output: dict = {"responsesFile": batch.output_file}
        else:
            output = {"inlinedResponses": {"inlinedResponses": batch.results}}
        meta["output"] = output
        op["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
    return op


class BatchEndpoints:
    """The Gemini batch routes of the simulator's HTTP handler (a mixin of `http_handler.Handler`)."""

    def _batch_route(self, method: str, parts: list[str]):
        """(endpoint, handler) for batchGenerateContent, /{v}/batches[/{id}[:cancel]], files/{id}:download."""
        kind, rest = parts[1], parts[2] if len(parts) == 3 else ""
        if kind == "models" and rest.endswith(":batchGenerateContent") and method == "POST":
            self._model = rest.split(":", 1)[0]
            return "batches.create", self._batches_create
        if kind == "files" and rest.endswith(":download") and method == "GET":
            self._file_id = rest.split(":", 1)[0]
            return "files.download", self._files_download
        if kind != "batches":
            return None
        if not rest:
            return ("batches.list", self._batches_list) if method == "GET" else None
        self._batch_id, _, action = rest.partition(":")
        if action:
            return (
                ("batches.cancel", self._batches_cancel) if (action, method) == ("cancel", "POST") else None
            )
        return {
            "GET": ("batches.get", self._batches_get),
            "DELETE": ("batches.delete", self._batches_delete),
        }.get(method)

    def _run(self, batch: Batch, count: int) -> None:
        run_gemini(self.sim, batch, count)

    def _batch(self) -> Batch:
        batch = self.sim.batches.get(self._batch_id, "gemini")
        if batch is None:
            raise SimError(404, _NOT_FOUND)
        self._model = batch.model
        return batch

    def _batches_create(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        model = self._model or ""
        if model not in gemini_api.MODELS:
            raise gemini_api.unknown_model(model, self._version, "batchGenerateContent")
        display, items, input_file = parse_create(self.sim, self._json(raw))
        batch = self.sim.batches.add(
            secrets.token_hex(8), "gemini", model, display, items, input_file=input_file
        )
        self._reply(200, operation(batch, time.time()))

    def _batches_get(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        batch = self.sim.batches.settle(self._batch(), self._run)
        self._reply(200, operation(batch, time.time()))

    def _batches_list(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        size = max(1, min(int(query["pageSize"]) if query.get("pageSize", "").isdigit() else 50, 1000))
        start = int(query["pageToken"]) if query.get("pageToken", "").isdigit() else 0
        mine = self.sim.batches.of("gemini")
        page = [self.sim.batches.settle(b, self._run) for b in mine[start : start + size]]
        body: dict = {"operations": [operation(b, time.time()) for b in page]} if page else {}
        if start + size < len(mine):
            body["nextPageToken"] = str(start + size)
        self._reply(200, body)

    def _batches_cancel(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        self.sim.batches.cancel(self._batch(), self._run)
        self._reply(200, {})

    def _batches_delete(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        self.sim.batches.delete(self._batch())
        self._reply(200, {})

    def _files_download(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        stored = self.sim.files.get(self._file_id)
        if stored is None:
            raise SimError(
                403, f"You do not have permission to access the File {self._file_id} or it may not exist."
            )
        if stored.source != "GENERATED":
            raise invalid(f"Only generated files can be downloaded; {stored.name} was uploaded.")
        self._reply_bytes(bytes(stored.data), stored.mime_type)

    def _reply_bytes(self, data: bytes, content_type: str) -> None:
        """A 200 whose body is raw bytes (a file's content), recorded like every reply."""
        self.sim.record(self._endpoint, self._stage, 200, self._model)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
