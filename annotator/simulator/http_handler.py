"""HTTP routing of the simulator: which path is which endpoint, keys, the Files API, errors in each API's format.

Every reply is recorded in `SimulatorServer.requests` before it is written, so a client that has its answer
can already see the record. The cachedContents and batch routes are mixins: caches.py, batches.py (Gemini) and
openai_batches.py (OpenAI: a path under /v1/files or /v1/batches with `Authorization: Bearer`; Gemini's Files
API shares /v1/files but sends `x-goog-api-key`).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from annotator.simulator import gemini_api, openai_api
from annotator.simulator.batches import BatchEndpoints, generate_body, prepare_generate
from annotator.simulator.caches import CacheEndpoints
from annotator.simulator.check import CHECK_ENDPOINTS, check_answer, is_check, looks_like_check
from annotator.simulator.errors import SimError, invalid
from annotator.simulator.files import CHUNK_GRANULARITY, UploadError
from annotator.simulator.gemini_api import API_VERSIONS
from annotator.simulator.openai_batches import OpenAIBatchEndpoints, chat_body
from annotator.simulator.prompt_reader import detect_stage
from annotator.simulator.served import (
    check_gemini_max_output,
    check_gemini_model,
    check_gemini_thinking,
    check_max_tokens,
    check_mm_limits,
    served_gemini_model,
)
from annotator.simulator.tokens import estimate, text_tokens

if TYPE_CHECKING:
    from annotator.simulator.server import SimulatorServer

log = logging.getLogger(__name__)


def _missing_file(file_id: str) -> SimError:
    return SimError(403, f"You do not have permission to access the File {file_id} or it may not exist.")


class Handler(CacheEndpoints, BatchEndpoints, OpenAIBatchEndpoints, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "v2s-simulator/1"
    # headers and body leave in separate writes; with Nagle on, the body waits for the client's delayed ACK
    # of the headers (up to 40 ms on Linux), a latency no real model server adds
    disable_nagle_algorithm = True

    @property
    def sim(self) -> SimulatorServer:
        return self.server.sim  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing -------------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _json(raw: bytes) -> object:
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise invalid("the request body is not valid JSON") from None

    def _reply(
        self,
        code: int,
        body: dict | None,
        headers: dict[str, str] | None = None,
        *,
        record: bool = True,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> None:
        if record:
            self.sim.record(self._endpoint, self._stage, code, self._model, start_s, end_s)
        payload = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _origin(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.sim.base_url

    def _dispatch(self, method: str) -> None:
        # One handler object serves every request of a keep-alive connection: reset the per-request state.
        self._endpoint, self._stage, self._model = "unknown", None, None
        self._version, self._file_id = "v1beta", ""
        self._received_s = time.monotonic()  # before the body is read: what a latency is measured from
        raw = self._body()
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        openai_style = (
            parts[-2:] == ["chat", "completions"]
            or (parts[-1:] == ["models"] and method == "GET" and self._bearer() is not None)
            or (  # OpenAI files and batches; Gemini's Files API shares /v1/files but sends x-goog-api-key
                parts[:1] == ["v1"]
                and parts[1:2] in (["files"], ["batches"])
                and self._bearer() is not None
                and not self.headers.get("x-goog-api-key")
            )
        )
        try:
            self._endpoint, handler = self._route(method, parts, openai_style)
            handler(raw, query)
        except SimError as error:
            self._fail(error, openai_style)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout) before the answer
            log.info("%s %s: the client closed the connection before the answer", method, self._endpoint)
            self.close_connection = True
        except Exception as exc:  # a bug in the simulator: say so instead of dropping the connection
            log.error("simulator error on %s %s:\n%s", method, self.path, traceback.format_exc())
            self._fail(SimError(500, f"v2s simulator bug: {type(exc).__name__}: {exc}"), openai_style)

    def _fail(self, error: SimError, openai_style: bool) -> None:
        body = openai_api.error_body(error) if openai_style else gemini_api.error_body(error)
        headers = dict(error.headers)
        if self._endpoint == "files.upload" and "upload_id=" in self.path:
            headers.setdefault("X-Goog-Upload-Status", "final")  # tells google-genai to stop retrying
        self._reply(error.code, body, headers)

    def _route(self, method: str, parts: list[str], openai_style: bool):
        if openai_style:
            if parts[-2:] == ["chat", "completions"] and method == "POST":
                return "chat.completions", self._chat
            if parts[1:2] in (["files"], ["batches"]):
                routed = self._openai_batch_route(method, parts)
                if routed is None:
                    raise SimError(
                        404, f"{method} {self.path.split('?')[0]} is not an endpoint of the v2s simulator"
                    )
                return routed
            return "models.list", self._openai_models
        if parts[:1] == ["upload"] and parts[1:2] and parts[1] in API_VERSIONS and parts[2:3] == ["files"]:
            if method != "POST":
                raise SimError(405, "upload URLs take POST only")
            self._version = parts[1]
            return "files.upload", self._upload
        if not parts or parts == ["health"]:
            return "health", self._health
        if parts[0] in API_VERSIONS and len(parts) in (2, 3):
            self._version = parts[0]
            cached = self._cache_route(method, parts) or self._batch_route(method, parts)
            if cached is not None:
                return cached
            if parts[1] == "files":
                if len(parts) == 2 and method == "GET":
                    return "files.list", self._files_list
                if len(parts) == 3 and method in ("GET", "DELETE"):
                    self._file_id = parts[2]
                    return (
                        ("files.get", self._files_get)
                        if method == "GET"
                        else ("files.delete", self._files_delete)
                    )
            if parts[1] == "models":
                if len(parts) == 2 and method == "GET":
                    return "models.list", self._gemini_models
                if len(parts) == 3 and ":" in parts[2] and method == "POST":
                    self._model, action = parts[2].split(":", 1)
                    if action == "generateContent":
                        return "generateContent", self._generate
                    if action == "countTokens":
                        return "countTokens", self._count_tokens
                    raise SimError(
                        400 if action == "streamGenerateContent" else 404,
                        f"models.{action} is not simulated; use generateContent",
                    )
                if len(parts) == 3 and method == "GET":
                    self._model = parts[2]
                    return "models.get", self._gemini_model
        raise SimError(404, f"{method} {self.path.split('?')[0]} is not an endpoint of the v2s simulator")

    # -- keys ----------------------------------------------------------------------------------------------
    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[7:].strip() if value[:7].lower() == "bearer " else None

    def _check_gemini_key(self, query: dict) -> None:
        key = (self.headers.get("x-goog-api-key") or query.get("key") or "").strip()
        if not key:
            raise gemini_api.missing_key()
        if self.sim.api_keys is not None and key not in self.sim.api_keys:
            raise gemini_api.bad_key()

    def _check_openai_key(self) -> None:
        key = self._bearer()
        if not key:
            raise openai_api.missing_key()
        if self.sim.api_keys is not None and key not in self.sim.api_keys:
            raise openai_api.bad_key()

    # -- Gemini models ---------------------------------------------------------------------------------------
    def _generate(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        model = self._model or ""
        body = self._json(raw)
        if looks_like_check(body):
            self._endpoint = CHECK_ENDPOINTS["gemini"]  # refused or answered, a check is recorded as one
        check_gemini_model(model, self._version, "generateContent")
        parsed = gemini_api.parse_generate(body)
        check_gemini_max_output(model, parsed.max_output_tokens)
        check_gemini_thinking(model, parsed.thinking_level)
        if is_check(parsed.texts) and parsed.video is None:
            self._answer_check("gemini", model, parsed)
            return
        request, cache, stage = prepare_generate(self.sim, model, parsed)
        self._stage = stage.value
        result = self.sim.answer("gemini", model, stage, request, received_s=self._received_s)
        body = generate_body(self.sim, model, result, cache)  # what a batch item answers too (batches.py)
        self._reply(200, body, start_s=result.start_s, end_s=result.end_s)

    def _count_tokens(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        body = self._json(raw)
        inner = body.get("generateContentRequest") if isinstance(body, dict) else None
        request = gemini_api.parse_generate(inner or body)
        self._reply(200, {"totalTokens": self.sim.prompt_tokens(request)})

    def _gemini_models(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        self._reply(200, {"models": [gemini_api.model_resource(m) for m in gemini_api.MODELS]})

    def _gemini_model(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        self._reply(200, gemini_api.model_resource(self._model or "", self._version))

    # -- Files API -------------------------------------------------------------------------------------------
    def _upload(self, raw: bytes, query: dict) -> None:
        """Resumable protocol as google-genai speaks it: start (keyed), then chunks to the upload URL."""
        upload_id = query.get("upload_id")
        commands = {c.strip().lower() for c in (self.headers.get("X-Goog-Upload-Command") or "").split(",")}
        if upload_id is None:
            self._start_upload(raw, query, commands)
            return
        store = self.sim.files
        try:
            if "cancel" in commands:
                self._reply(200, None, {"X-Goog-Upload-Status": "cancelled"}, record=False)
                return
            if "query" in commands:
                received = {"X-Goog-Upload-Size-Received": str(store.received(upload_id))}
                self._reply(200, None, {"X-Goog-Upload-Status": "active", **received}, record=False)
                return
            offset = int(self.headers.get("X-Goog-Upload-Offset") or 0)
            stored = store.append(upload_id, offset, raw, finalize="finalize" in commands)
        except UploadError as exc:
            raise invalid(str(exc)) from None
        if stored is None:
            self._reply(200, None, {"X-Goog-Upload-Status": "active"}, record=False)
            return
        resource = stored.resource(self._origin(), self._version, time.time(), store.processing_s)
        self._reply(200, {"file": resource}, {"X-Goog-Upload-Status": "final"})

    def _start_upload(self, raw: bytes, query: dict, commands: set[str]) -> None:
        self._check_gemini_key(query)
        if (
            self.headers.get("X-Goog-Upload-Protocol") or ""
        ).lower() != "resumable" or "start" not in commands:
            raise invalid(
                "the simulator takes resumable uploads only: X-Goog-Upload-Protocol: resumable, "
                "X-Goog-Upload-Command: start"
            )
        meta = self._json(raw)
        file = (meta.get("file") if isinstance(meta, dict) else None) or {}
        size = (
            self.headers.get("X-Goog-Upload-Header-Content-Length")
            or file.get("size_bytes")
            or file.get("sizeBytes")
        )
        mime = (
            self.headers.get("X-Goog-Upload-Header-Content-Type")
            or file.get("mime_type")
            or file.get("mimeType")
        )
        try:
            upload_id = self.sim.files.start_upload(
                name=file.get("name"),
                display_name=file.get("display_name") or file.get("displayName"),
                mime_type=mime or "",
                size=int(size) if size not in (None, "") else None,
            )
        except UploadError as exc:
            raise SimError(409, str(exc)) from None
        url = f"{self._origin()}/upload/{self._version}/files?upload_id={upload_id}&upload_protocol=resumable"
        headers = {
            "X-Goog-Upload-URL": url,
            "X-Goog-Upload-Control-URL": url,
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
        }
        self._reply(200, None, headers, record=False)

    def _files_get(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        stored = self.sim.files.get(self._file_id)
        if stored is None:
            raise _missing_file(self._file_id)
        self._reply(
            200, stored.resource(self._origin(), self._version, time.time(), self.sim.files.processing_s)
        )

    def _files_delete(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        if not self.sim.files.delete(self._file_id):
            raise _missing_file(self._file_id)
        self._reply(200, {})

    def _files_list(self, raw: bytes, query: dict) -> None:
        self._check_gemini_key(query)
        size = int(query["pageSize"]) if query.get("pageSize", "").isdigit() else 10
        page, token = self.sim.files.list(size, query.get("pageToken"))
        now, processing = time.time(), self.sim.files.processing_s
        body: dict = {}
        if page:
            body["files"] = [f.resource(self._origin(), self._version, now, processing) for f in page]
        if token:
            body["nextPageToken"] = token
        self._reply(200, body)

    # -- OpenAI ----------------------------------------------------------------------------------------------
    def _chat(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        body = self._json(raw)
        self._model = str(body.get("model") or "") if isinstance(body, dict) else None
        if looks_like_check(body):
            self._endpoint = CHECK_ENDPOINTS["openai"]
        request = openai_api.parse_chat(body)
        # the prompt's text tokens only: what vLLM adds for images and video is left out (docs/simulator.md)
        check_max_tokens(
            request.model, request.max_tokens, text_tokens(request.chars), self.sim.max_model_len
        )
        check_mm_limits(request.model, request.media_items, self.sim.limit_mm_per_prompt)
        # a check may carry the stage's media shape (blank frames or a blank clip): refused like a stage's
        # media, but never read
        if is_check(request.texts):
            self._answer_check("openai", request.model, request)
            return
        stage = detect_stage(request.schema_title, request.texts, has_video=request.video is not None)
        self._stage = stage.value
        result = self.sim.answer("openai", request.model, stage, request, received_s=self._received_s)
        body = chat_body(request.model, result)  # what a batch item answers too (openai_batches.py)
        self._reply(200, body, start_s=result.start_s, end_s=result.end_s)

    def _answer_check(self, api: str, model: str, request) -> None:
        """A configuration check (check.py): the smallest answer the schema allows, after every refusal a
        stage's request would meet; recorded apart from the model calls, never numbered nor disturbed."""
        self._endpoint = CHECK_ENDPOINTS[api]
        self._stage = detect_stage(request.schema_title, request.texts, has_video=False).value
        text = check_answer(getattr(request, "schema", None))
        usage = estimate(prompt_chars=request.chars, answer_chars=len(text))
        if api == "gemini":
            body = gemini_api.generate_response(text, served_gemini_model(model), usage)
        else:
            body = openai_api.chat_response(text, model, usage)
        self._reply(200, body)

    def _openai_models(self, raw: bytes, query: dict) -> None:
        self._check_openai_key()
        self._reply(200, openai_api.models_list(self.sim.max_model_len))

    def _health(self, raw: bytes, query: dict) -> None:
        play = self.sim.screenplay
        self._reply(
            200, {"status": "ok", "screenplay": play.title, "duration_s": play.duration_s}, record=False
        )
