"""OpenAI chat-completions wire format (non-streaming), as DeepSeek, vLLM and SGLang serve it.

The answer carries `reasoning_content` on the message (as DeepSeek's reasoner does); `usage` counts the
reasoning inside `completion_tokens` and reports it in `completion_tokens_details.reasoning_tokens`.
A user message may carry a video as a `video_url` data URL (vLLM/SGLang style); then the plot and script
stages are answered here too, exactly as over the Gemini API.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import secrets
import time
from dataclasses import dataclass, field

from annotator.simulator.errors import SimError, invalid
from annotator.simulator.gemini_api import VideoPart
from annotator.simulator.served import (
    DEFAULT_MAX_MODEL_LEN,
    OPENAI_MODELS,
    VLLM_MODEL,
    check_openai_model,
    check_openai_params,
    check_openai_part,
)
from annotator.simulator.tokens import Usage

MODELS = tuple(OPENAI_MODELS)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


@dataclass
class ChatRequest:
    model: str
    texts: list[str] = field(default_factory=list)  # user and system texts, in order
    chars: int = 0
    schema_title: str | None = None
    video: VideoPart | None = None
    service_tier: str | None = None  # "flex", "default", "auto", … as sent
    max_tokens: int | None = None  # max_tokens (or max_completion_tokens) as sent
    temperature: float | None = None
    media_items: dict[str, int] = field(default_factory=lambda: {"image": 0, "video": 0})  # parts sent


def parse_chat(body: object) -> ChatRequest:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty list")
    if body.get("stream"):
        raise invalid("the v2s simulator does not stream; send stream=false")
    check_openai_model(model)
    check_openai_params(model, body)
    request = ChatRequest(model=model)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    request.max_tokens = int(limit) if isinstance(limit, int | float) else None
    temperature = body.get("temperature")
    request.temperature = float(temperature) if isinstance(temperature, int | float) else None
    tier = body.get("service_tier")
    request.service_tier = tier if isinstance(tier, str) else None
    frames: list[bytes] = []
    for message in messages:
        if not isinstance(message, dict):
            raise invalid("every message must be an object with `role` and `content`")
        role = message.get("role")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if not isinstance(part, dict):
                continue
            check_openai_part(model, part.get("type"))
            if part.get("type") in ("image_url", "video_url"):
                request.media_items[part["type"].removesuffix("_url")] += 1
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                request.chars += len(part["text"])
                if role in ("user", "system", "developer"):
                    request.texts.append(part["text"])
            elif part.get("type") == "video_url" and request.video is None:
                request.video = _video(part.get("video_url") or {})
            elif part.get("type") == "image_url":
                frames.append(_image(part.get("image_url") or {}))
    if request.video is None and frames:
        # Sampled frames stand for the clip; the proxy's provenance travels in their JPEG comment.
        tag = next((c for c in map(jpeg_comment, frames) if c), None)
        request.video = VideoPart(
            mime_type="image/jpeg", frames=len(frames), images=frames, provenance_tag=tag
        )
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in (None, "text", "json_object", "json_schema"):
        raise invalid(f"response_format.type {kind!r} is not one of text, json_object, json_schema")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {}
        request.schema_title = schema.get("title") or spec.get("name")
    return request


def _video(video_url: dict) -> VideoPart:
    url = video_url.get("url") if isinstance(video_url, dict) else None
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise invalid("video_url must be a data URL (data:video/mp4;base64,…); the simulator fetches nothing")
    head, data = url[5:].split(";base64,", 1)
    try:
        return VideoPart(mime_type=head or "video/mp4", data=base64.b64decode(data))
    except (binascii.Error, ValueError):
        raise invalid("video_url data is not valid base64") from None


def _image(image_url: dict) -> bytes:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise invalid(
            "image_url must be a data URL (data:image/jpeg;base64,…); the simulator fetches nothing"
        )
    try:
        return base64.b64decode(url.split(";base64,", 1)[1])
    except (binascii.Error, ValueError):
        raise invalid("image_url data is not valid base64") from None


def jpeg_comment(data: bytes) -> str | None:
    """The text of a JPEG's first COM segment (marker FFFE), or None."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xFE:
            return data[pos + 4 : pos + 2 + length].decode("utf-8", "replace")
        if marker == 0xDA:  # start of scan: no more headers
            return None
        pos += 2 + length
    return None


def chat_response(
    text: str,
    model: str,
    usage: Usage,
    *,
    reasoning: str | None = None,
    finish_reason: str = "stop",
    empty: bool = False,
    blocked: bool = False,
    tier: str = "standard",
) -> dict:
    """A chat completion; `empty` answers with no choices, `blocked` with a content_filter finish and no text."""
    message: dict = {"role": "assistant", "content": None if blocked else text}
    if reasoning is not None and not blocked:
        message["reasoning_content"] = reasoning
    if empty or blocked:
        usage = dataclasses.replace(usage, output=0, reasoning=0)
    choices = (
        [] if empty else [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": f"chatcmpl-sim-{secrets.token_hex(8)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "v2s-simulator",
        "service_tier": "flex" if tier == "flex" else "default",
        "choices": choices,
        "usage": {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.output + usage.reasoning,
            "total_tokens": usage.total,
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
        },
    }


def error_body(error: SimError) -> dict:
    code = error.status.lower() if error.status and error.status.islower() else None
    return {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPES.get(
                error.code, "server_error" if error.code >= 500 else "invalid_request_error"
            ),
            "param": error.param,
            "code": code,
        }
    }


def missing_key() -> SimError:
    return SimError(
        401,
        "You didn't provide an API key. Pass it as 'Authorization: Bearer <key>' "
        "(v2s simulator: any non-empty key works unless the server was given a key list).",
        status="invalid_api_key",
    )


def bad_key() -> SimError:
    return SimError(401, "Incorrect API key provided.", status="invalid_api_key")


def models_list(max_model_len: int = DEFAULT_MAX_MODEL_LEN) -> dict:
    """GET /v1/models; the vLLM-style model lists its max_model_len, as vLLM does."""

    def entry(model: str) -> dict:
        item = {"id": model, "object": "model", "created": 0, "owned_by": "v2s-simulator"}
        return {**item, "max_model_len": max_model_len} if model == VLLM_MODEL else item

    return {"object": "list", "data": [entry(m) for m in MODELS]}
