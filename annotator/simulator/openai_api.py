"""OpenAI chat-completions wire format (non-streaming), as DeepSeek, vLLM and SGLang serve it.

The answer carries `reasoning_content` on the message (as DeepSeek's reasoner does); `usage` counts the
reasoning inside `completion_tokens` and reports it in `completion_tokens_details.reasoning_tokens`.
A user message may carry a video as a `video_url` data URL (vLLM/SGLang style); then the plot and script
stages are answered here too, exactly as over the Gemini API.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field

from annotator.simulator.errors import SimError, invalid
from annotator.simulator.gemini_api import VideoPart
from annotator.simulator.tokens import Usage

MODELS = ("deepseek-chat", "deepseek-reasoner", "v2s-sim")
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
    request = ChatRequest(model=model)
    for message in messages:
        if not isinstance(message, dict):
            raise invalid("every message must be an object with `role` and `content`")
        role = message.get("role")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                request.chars += len(part["text"])
                if role in ("user", "system", "developer"):
                    request.texts.append(part["text"])
            elif part.get("type") == "video_url" and request.video is None:
                request.video = _video(part.get("video_url") or {})
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


def chat_response(
    text: str, model: str, usage: Usage, *, reasoning: str | None = None, finish_reason: str = "stop"
) -> dict:
    message: dict = {"role": "assistant", "content": text}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {
        "id": f"chatcmpl-sim-{secrets.token_hex(8)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "v2s-simulator",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
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
            "param": None,
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


def models_list() -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "v2s-simulator"} for m in MODELS],
    }
