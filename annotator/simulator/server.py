"""`v2s sim-server`: Gemini's REST API and an OpenAI-compatible chat API on loopback, answered from a screenplay.

The real SDKs run unchanged against it::

    genai.Client(api_key="any", http_options=types.HttpOptions(base_url=server.base_url))   # v1 or v1beta
    OpenAI(base_url=server.base_url + "/v1", api_key="any")

Endpoints (`{v}` is v1, v1beta or v1alpha):

    POST   /{v}/models/{model}:generateContent     plot / script / distill answers (JSON)
    POST   /{v}/models/{model}:countTokens
    GET    /{v}/models, /{v}/models/{model}
    POST   /upload/{v}/files                       resumable upload: start (X-Goog-Upload-Command: start)
    POST   /upload/{v}/files?upload_id=…           upload / finalize (returns {"file": {...}})
    GET    /{v}/files, /{v}/files/{id};  DELETE /{v}/files/{id}
    GET    /{v}/files/{id}:download?alt=media      a generated file's bytes (a batch's results)
    POST   /{v}/cachedContents;  GET /{v}/cachedContents[/{id}];  DELETE /{v}/cachedContents/{id}
    POST   /{v}/models/{model}:batchGenerateContent   a batch (inlined requests or an uploaded JSONL file)
    GET    /{v}/batches, /{v}/batches/{id};  POST /{v}/batches/{id}:cancel;  DELETE /{v}/batches/{id}
    POST   /v1/chat/completions                    OpenAI format, non-streaming, with `usage`
    GET    /v1/models                              OpenAI list when called with `Authorization: Bearer`
    POST   /v1/files (multipart);  GET /v1/files/{id}[/content];  DELETE /v1/files/{id}    OpenAI, Bearer
    POST   /v1/batches;  GET /v1/batches[/{id}];  POST /v1/batches/{id}/cancel            OpenAI, Bearer
                                                   (404 with openai_batches=False, as DeepSeek answers)

Batches (batches.py, openai_batches.py; store and timing in batch_store.py) are PENDING / validating for
`BatchPlay.pending_s`, RUNNING / in_progress for `running_s`, then answered item by item exactly as
generateContent / chat completions would answer them.

Which part of the film a request is about is learned only from the media it carries (media_reader.py): the
film mark in every picture gives the film time, the sound whether it was heard. The v2s provenance tag is read
for one thing only, the segment number that fault scenarios target (`FaultRule.segment`); no answer depends on it.

Timestamps in answers are clip-relative "MM:SS", counted from the first picture the request carried (with
`videoMetadata` offsets: the first frame at or after startOffset). To get absolute seconds, the engine adds the
segment's start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from annotator.schemas.provenance import Provenance
from annotator.simulator import gemini_api
from annotator.simulator.batch_store import BatchPlay, BatchStore
from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.caches import Cache, CacheStore
from annotator.simulator.errors import SimError, invalid
from annotator.simulator.files import (
    DEFAULT_TTL_S,
    FILE_MAX_BYTES,
    STORAGE_CAP_BYTES,
    FileStore,
    inspect_video,
)
from annotator.simulator.flex import FLEX, FlexPlay
from annotator.simulator.gemini_api import GenerateRequest, VideoPart
from annotator.simulator.http_handler import Handler
from annotator.simulator.media_reader import Seen, UnreadableMedia, read_frames, read_video
from annotator.simulator.misshapen import misshape
from annotator.simulator.openai_api import ChatRequest
from annotator.simulator.openai_batches import OpenAIFileStore, openai_batches_from_env
from annotator.simulator.prompt_reader import Stage
from annotator.simulator.responder import Answer, Clip, Responder
from annotator.simulator.scenarios import Scenario, stuck_processing_s
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.served import DEFAULT_LIMIT_MM_PER_PROMPT, DEFAULT_MAX_MODEL_LEN
from annotator.simulator.tokens import Usage, estimate

log = logging.getLogger(__name__)
MODEL_CALLS = ("generateContent", "chat.completions")
BATCH_CALLS = ("batch.generateContent", "batch.chat.completions")  # one record per answered batch item


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered (tests read these through `SimulatorServer.requests`)."""

    # generateContent, countTokens, chat.completions, batch.generateContent, batch.chat.completions (one per
    # batch item), batches.create/get/list/cancel/delete, files.upload/get/list/delete/download, models.list…
    endpoint: str
    stage: str | None  # a Stage value for model calls
    status: int
    model: str | None = None
    start_s: float | None = None  # absolute range shown, for answered model calls
    end_s: float | None = None


@dataclass(frozen=True)
class Result:
    answer: Answer
    text: str
    usage: Usage
    fault: Fault
    start_s: float | None
    end_s: float | None
    tier: str = "standard"  # the tier that served it (flex when asked for and not shed)


class SimulatorServer:
    """The simulator as a context manager: `with SimulatorServer(play) as server: ... server.base_url`.

    `api_keys`: None accepts any non-empty key, a collection only those keys. `behaviours` decides faults per
    request (behaviours.py). `file_ttl_s` / `file_processing_s` shape the Files API (48 h / 0 s by default),
    `file_storage_cap_bytes` / `file_max_bytes` cap it (20 GB a project, 2 GB a file by default).
    `batches` times the batch APIs (default: `BatchPlay.from_env()`, V2S_SIM_BATCH_*); `openai_batches=False`
    answers OpenAI's /v1/files and /v1/batches 404 like DeepSeek (default: V2S_SIM_OPENAI_BATCHES, on)."""

    def __init__(
        self,
        screenplay: Screenplay,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        behaviours: Behaviours | None = None,
        api_keys: set[str] | frozenset[str] | list[str] | None = None,
        file_ttl_s: float = DEFAULT_TTL_S,
        file_processing_s: float = 0.0,
        allow_remote: bool = False,
        imperfection: float = 0.0,
        flex: FlexPlay | None = None,
        batches: BatchPlay | None = None,
        openai_batches: bool | None = None,
        file_storage_cap_bytes: int = STORAGE_CAP_BYTES,
        file_max_bytes: int = FILE_MAX_BYTES,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(f"the simulator serves on loopback only; {host!r} is not a loopback address")
        self.screenplay = screenplay
        self.host, self.port = host, port
        self.responder = Responder(screenplay, imperfection=imperfection)
        self.behaviours = behaviours or Behaviours()
        self.flex = flex or FlexPlay()  # how the Flex tier answers (flex.py): slower, some requests shed
        self.caches = CacheStore()  # explicit context caches (caches.py)
        # batches of both APIs (batches.py); `self.batches.play` is their timing
        self.batches = BatchStore(batches or BatchPlay.from_env())
        self.openai_batches = openai_batches_from_env() if openai_batches is None else openai_batches
        self.openai_files = OpenAIFileStore()  # OpenAI's Files API: batch input and output files
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.max_model_len = DEFAULT_MAX_MODEL_LEN  # vLLM-style model v2s-sim: prompt + max_tokens at most
        # vLLM's --limit-mm-per-prompt for v2s-sim: images and videos one prompt may carry
        self.limit_mm_per_prompt = dict(DEFAULT_LIMIT_MM_PER_PROMPT)
        self.files = FileStore(
            ttl_s=file_ttl_s,
            processing_s=stuck_processing_s(self.behaviours, file_processing_s),
            storage_cap_bytes=file_storage_cap_bytes,
            file_max_bytes=file_max_bytes,
        )
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._seen: dict[tuple, Seen] = {}  # media read, by content and offsets (oldest first)
        self._calls = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> str:
        """Bind and serve in a background thread; returns the base URL (http://127.0.0.1:PORT)."""
        if self._httpd is not None:
            return self.base_url
        server_class = _IPv6Server if ":" in self.host else _Server
        self._httpd = server_class((self.host, self.port), Handler)
        self._httpd.sim = self  # type: ignore[attr-defined]
        port = self._httpd.server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="v2s-sim-server", daemon=True)
        self._thread.start()
        log.info("v2s simulator serving %r at %s", self.screenplay.title, self.base_url)
        return self.base_url

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def request_count(self, stage: str | None = None) -> int:
        """Model calls (generateContent, chat completions, batch items; any outcome), optionally of one stage."""
        calls = MODEL_CALLS + BATCH_CALLS
        return sum(1 for r in self.requests if r.endpoint in calls and stage in (None, r.stage))

    def check_count(self) -> int:
        """Configuration checks answered (`v2s check`'s tiny calls; check.py), kept apart from model calls."""
        return sum(1 for r in self.requests if r.endpoint.startswith("check."))

    def record(
        self,
        endpoint: str,
        stage: str | None,
        status: int,
        model: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> None:
        with self._lock:
            self._log.append(RequestRecord(endpoint, stage, status, model, start_s, end_s))
        log.info("%s %s → %d", endpoint, stage or "", status)

    # -- model calls --------------------------------------------------------------------------------------
    def resolve_clip(self, video: VideoPart | None, stage: Stage) -> tuple[Clip, bool]:
        """(absolute clip, whether the request carried sound) for a request's video, read from its pictures and
        sound (media_reader.py); SimError when it cannot be read or shows no marked film."""
        if video is None:
            raise invalid(
                f"the {stage.value} prompt needs the segment's video: send the proxy as inlineData "
                "(base64 video/mp4) or as fileData with the fileUri of an uploaded file"
            )
        if video.frames:
            key = ("frames", *(hashlib.sha256(image).hexdigest() for image in video.images))
            seen = self._read(key, lambda: read_frames(video.images))
            where, tag = f"the {video.frames} sampled frames", video.provenance_tag
            video.fps = (
                seen.frames / seen.media_s if seen.media_s > 0 else None
            )  # tokens: one image per frame
        elif video.data is not None:
            facts = inspect_video(video.data)
            if facts is None:
                raise invalid(
                    f"the inline {video.mime_type} ({len(video.data)} bytes) is not a readable video"
                )
            where, tag = "the inline video", facts.provenance
            key = (hashlib.sha256(video.data).hexdigest(), video.start_offset_s, video.end_offset_s)
            seen = self._read(key, lambda: self._read_video(video.data, video, where))
        else:
            stored = self._active_file(video)
            where, tag = f"uploaded file {stored.name}", stored.facts.provenance if stored.facts else None
            data = bytes(stored.data)
            key = (stored.id, video.start_offset_s, video.end_offset_s)
            seen = self._read(key, lambda: self._read_video(data, video, where))
        if isinstance(tag, str):
            tag = Provenance.from_tag(tag)
        # the tag only numbers the segment for fault scenarios (scenarios.py); no answer depends on it
        index = tag.segment_index if tag is not None else 1
        return Clip(seen.start_s, seen.end_s, index, heard=seen.heard), seen.audio

    def _active_file(self, video: VideoPart):
        file_id = gemini_api.file_id_from_uri(video.file_uri or "")
        stored = self.files.get(file_id) if file_id else None
        if stored is None:
            raise SimError(
                403,
                f"You do not have permission to access the File {file_id or video.file_uri} or it may not exist.",
            )
        if stored.state(time.time(), self.files.processing_s) != "ACTIVE":
            raise SimError(
                400,
                f"The File {stored.id} is not in an ACTIVE state and usage is not allowed.",
                status="FAILED_PRECONDITION",
            )
        return stored

    def _read_video(self, data: bytes, video: VideoPart, where: str) -> Seen:
        if video.end_offset_s is not None and video.end_offset_s <= (video.start_offset_s or 0.0):
            raise invalid(f"videoMetadata offsets select nothing of {where}")
        return read_video(data, self.screenplay, video.start_offset_s, video.end_offset_s)

    def _read(self, key: tuple, read) -> Seen:
        """What a video shows, read once per content (and offsets): plot and script see the same proxy."""
        with self._lock:
            if key in self._seen:
                return self._seen[key]
        try:
            seen = read()
        except UnreadableMedia as exc:
            raise invalid(str(exc)) from None
        with self._lock:
            self._seen[key] = seen
            while len(self._seen) > 512:
                self._seen.pop(next(iter(self._seen)))
        return seen

    def prompt_tokens(self, request: GenerateRequest) -> int:
        """What countTokens says of a request (text and its video), answered or not."""
        seconds, audio = 0.0, False
        if request.video is not None:
            try:
                clip, audio = self.resolve_clip(request.video, Stage.PLOT_FIRST)
                seconds = clip.end_s - clip.start_s
            except SimError:
                facts = inspect_video(request.video.data) if request.video.data else None
                seconds, audio = (facts.duration_s, facts.has_audio) if facts else (0.0, False)
        return estimate(
            prompt_chars=request.chars,
            answer_chars=0,
            video_s=seconds,
            has_audio=audio,
            fps=request.video.fps if request.video else None,
            low_resolution=request.low_resolution,
        ).prompt

    def cache_tokens(self, cache: Cache) -> int:
        return self.prompt_tokens(cache.request)

    def answer(
        self,
        api: str,
        model: str,
        stage: Stage,
        request: GenerateRequest | ChatRequest,
        *,
        received_s: float | None = None,
        batch: bool = False,
    ) -> Result:
        """Place the clip, ask the behaviours, build the answer and its usage; SimError for refusals/faults.
        `batch`: the request is an item of a batch (the behaviours see it as one)."""
        clip, audio = (None, False)
        if stage.needs_video:
            clip, audio = self.resolve_clip(request.video, stage)
        info = self._request_info(api, model, stage, request, clip, received_s)
        if batch:
            info = dataclasses.replace(info, batch=True)
        fault = self.behaviours.before_answer(info) or Fault()
        tier = "flex" if getattr(request, "service_tier", None) == FLEX else "standard"
        if tier == "flex":
            time.sleep(self.flex.admit(model))  # a shed request raises here, as the busy tier answers 503
        if fault.delay_s > 0:
            time.sleep(fault.delay_s)
        if fault.status is not None:
            retry = (
                {"Retry-After": str(math.ceil(fault.retry_after_s))}
                if fault.retry_after_s is not None
                else {}
            )
            raise SimError(fault.status, fault.message, headers=retry, details=fault.details)
        answer = self.responder.answer(stage, request.texts, clip)
        text = _answer_text(answer, fault)
        usage = estimate(
            prompt_chars=request.chars,
            answer_chars=len(text),
            video_s=(clip.end_s - clip.start_s) if clip else 0.0,
            has_audio=audio,
            fps=request.video.fps if clip and request.video else None,
            low_resolution=getattr(request, "low_resolution", False),
            reasoning_chars=len(answer.reasoning or ""),
        )
        if fault.exhaust_output:  # all of the output budget went to thinking (65,536: the model's limit)
            budget = getattr(request, "max_output_tokens", None) or getattr(request, "max_tokens", None)
            usage = dataclasses.replace(usage, output=0, reasoning=budget or 65536)
        return Result(
            answer, text, usage, fault, clip.start_s if clip else None, clip.end_s if clip else None, tier
        )

    def _request_info(
        self,
        api: str,
        model: str,
        stage: Stage,
        request: GenerateRequest | ChatRequest,
        clip: Clip | None,
        received_s: float | None,
    ) -> RequestInfo:
        """What the behaviours see of a request, numbered in arrival order."""
        with self._lock:
            self._calls += 1
            number = self._calls
        return RequestInfo(
            number=number,
            api=api,
            endpoint=MODEL_CALLS[0] if api == "gemini" else MODEL_CALLS[1],
            stage=stage,
            model=model,
            start_s=clip.start_s if clip else None,
            end_s=clip.end_s if clip else None,
            segment_index=clip.segment_index if clip else None,
            media_resolution=getattr(request, "media_resolution", None),
            frames=request.video.frames if clip and request.video else 0,
            received_s=time.monotonic() if received_s is None else received_s,
            max_output_tokens=getattr(request, "max_output_tokens", None)
            or getattr(request, "max_tokens", None),
            temperature=request.temperature,
            thinking_level=getattr(request, "thinking_level", None),
            thinking_budget=getattr(request, "thinking_budget", None),
        )


def _answer_text(answer: Answer, fault: Fault) -> str:
    """The answer's JSON as sent, after a fault's changes: replaced, cut off, or emptied."""
    body = misshape(fault.misshape, answer.body, fault.size_bytes) if fault.misshape else answer.body
    text = fault.answer_text if fault.answer_text is not None else json.dumps(body, ensure_ascii=False)
    if fault.truncate_fraction is not None:  # cut off mid-answer, as when max output tokens are hit
        text = text[: max(1, int(len(text) * fault.truncate_fraction))]
    if fault.empty or fault.blocked or fault.exhaust_output:
        text = ""
    return text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    screenplay_path: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    imperfection: float = 0.0,
    scenario: Scenario | None = None,
) -> None:
    """Run the simulator until Ctrl-C (the `v2s sim-server` command), playing `scenario`'s faults if given."""
    screenplay = Screenplay.load(screenplay_path)
    server = SimulatorServer(screenplay, host, port, imperfection=imperfection, behaviours=scenario)
    url = server.start()
    print(
        f"v2s simulator: {screenplay.title!r} ({screenplay.duration_s:.0f} s) at {url}\n"
        f"  Gemini: genai.Client(api_key=ANY, http_options=HttpOptions(base_url={url!r}))\n"
        f"  OpenAI: OpenAI(base_url={url + '/v1'!r}, api_key=ANY)\n"
        f"  batches: pending {server.batches.play.pending_s:g} s, running {server.batches.play.running_s:g} s"
        f"{'' if server.openai_batches else '; OpenAI batches off (404, as DeepSeek)'}\n"
        "  Ctrl-C stops.",
        flush=True,
    )
    for rule in scenario.rules if scenario else []:
        print(f"  fault: {rule.model_dump_json(exclude_none=True)}", flush=True)
    stop = threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
