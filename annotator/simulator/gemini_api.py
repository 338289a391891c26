"""Gemini REST wire format: reading `generateContent` requests, writing responses, errors and File resources.

Field names are read in both spellings the API accepts: google-genai sends camelCase at the top level but
snake_case inside parts (`inlineData.mime_type`, `fileData.file_uri`, `videoMetadata.start_offset`).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field

from annotator.simulator.errors import SimError, invalid
from annotator.simulator.schema_rules import check_response_schema
from annotator.simulator.served import GEMINI_MODELS, GEMINI_ROUTED, check_gemini_model, served_gemini_model
from annotator.simulator.tokens import Usage

API_VERSIONS = ("v1", "v1beta", "v1alpha")
MODELS = (*GEMINI_MODELS, *GEMINI_ROUTED)  # ListModels lists the aliases too
_PART_DATA = ("text", "inlineData", "inline_data", "fileData", "file_data", "functionCall", "function_call")
_PART_DATA += ("functionResponse", "function_response", "executableCode", "codeExecutionResult", "thought")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")
_URLSAFE = str.maketrans("-_", "+/")
_FILE_IN_URI = re.compile(r"(?:^|/)files/([A-Za-z0-9_-]+)/?$")


def _get(obj: dict, *names: str):
    for name in names:
        if name in obj:
            return obj[name]
    return None


def parse_duration(value: object, what: str) -> float | None:
    """Seconds from a protobuf Duration as JSON ("12.5s"), a number, or {"seconds", "nanos"}."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(f"{what} {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, dict):
        seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
    elif isinstance(value, str) and _DURATION.match(value):
        seconds = float(_DURATION.match(value).group(1))
    else:
        raise invalid(f'{what} {value!r} is not a duration such as "12.5s"')
    if seconds < 0:
        raise invalid(f"{what} {value!r} is negative")
    return seconds


def file_id_from_uri(uri: str) -> str | None:
    """`files/abc123` from a file URI (ours, the real API's, or a bare resource name)."""
    match = _FILE_IN_URI.search(uri.split("?", 1)[0])
    return match.group(1) if match else None


@dataclass
class VideoPart:
    mime_type: str
    data: bytes | None = None  # inline bytes
    file_uri: str | None = None
    start_offset_s: float | None = None
    end_offset_s: float | None = None
    fps: float | None = None
    frames: int = 0  # > 0: the "video" is this many sampled JPEG frames (OpenAI-style image parts)
    images: list[bytes] = field(default_factory=list)  # those frames' bytes
    provenance_tag: str | None = None  # frames carry the proxy's provenance in their JPEG comment


@dataclass
class GenerateRequest:
    texts: list[str] = field(default_factory=list)  # user (and system) texts, in order
    chars: int = 0  # all text characters in the request (history included), for token counts
    schema_title: str | None = None
    schema: dict | None = None  # the response schema as sent (a check request is answered from it)
    video: VideoPart | None = None
    low_resolution: bool = False
    media_resolution: str | None = None  # generationConfig.mediaResolution as sent
    service_tier: str | None = None  # the request's serviceTier ("flex", "standard"), lower-cased
    cached_content: str | None = None  # the cachedContents/ID whose contents come first
    max_output_tokens: int | None = None  # generationConfig.maxOutputTokens as sent
    temperature: float | None = None
    thinking_level: str | None = None  # generationConfig.thinkingConfig.thinkingLevel, lower-cased
    thinking_budget: int | None = None


def parse_generate(body: object) -> GenerateRequest:
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object with `contents`")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    request = GenerateRequest()
    part_resolution: str | None = None
    system = _get(body, "systemInstruction", "system_instruction")
    turns = ([{**system, "role": "system"}] if isinstance(system, dict) else []) + contents
    offset = 1 if isinstance(system, dict) else 0
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise invalid("every item of `contents` must be an object with `parts`")
        role = turn.get("role") or "user"
        for number, part in enumerate(turn.get("parts") or []):
            if not isinstance(part, dict):
                raise invalid("every part must be an object")
            _require_data(part, f"contents[{index - offset}].parts[{number}]", role)
            text = part.get("text")
            if isinstance(text, str):
                request.chars += len(text)
                if role != "model":
                    request.texts.append(text)
            video = _video_part(part)
            if video is not None and request.video is None:
                request.video = video
                part_resolution = _part_resolution(part)
    config = _get(body, "generationConfig", "generation_config") or {}
    check_response_schema(config)  # what Gemini refuses in a schema, before anything is answered
    schema = _get(config, "responseJsonSchema", "response_json_schema", "responseSchema", "response_schema")
    if isinstance(schema, dict):
        request.schema = schema
        if isinstance(schema.get("title"), str):
            request.schema_title = schema["title"]
    resolution = _get(config, "mediaResolution", "media_resolution") or ""
    request.low_resolution = str(resolution).upper().endswith("LOW")
    request.media_resolution = str(resolution) or None
    if part_resolution:  # a part's own mediaResolution overrides the request's (Gemini 3+, v1beta)
        request.low_resolution = part_resolution.upper().endswith("LOW")
    cached = _get(body, "cachedContent", "cached_content")
    request.cached_content = str(cached) if cached else None
    tier = _get(body, "serviceTier", "service_tier")
    request.service_tier = str(tier).lower().removeprefix("service_tier_") if tier else None
    _read_generation(request, config)
    return request


def _require_data(part: dict, where: str, role: str) -> None:
    """Gemini refuses a part whose `data` oneof is unset; proto3 JSON reads text "" as unset too (a model
    turn repeated back with no text is the usual way to send one)."""
    filled = [name for name in _PART_DATA if part.get(name) not in (None, "", {})]
    if not filled:
        where = where if role != "system" else where.replace("contents[-1]", "system_instruction", 1)
        raise invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
            "initialized field"
        )


def _read_generation(request: GenerateRequest, config: dict) -> None:
    """The output budget, temperature and thinking settings as sent (the behaviours and tests read them)."""
    limit = _get(config, "maxOutputTokens", "max_output_tokens")
    request.max_output_tokens = int(limit) if isinstance(limit, int | float) else None
    temperature = config.get("temperature")
    request.temperature = float(temperature) if isinstance(temperature, int | float) else None
    thinking = _get(config, "thinkingConfig", "thinking_config") or {}
    level = _get(thinking, "thinkingLevel", "thinking_level")
    request.thinking_level = str(level).lower() if level else None
    budget = _get(thinking, "thinkingBudget", "thinking_budget")
    request.thinking_budget = int(budget) if isinstance(budget, int | float) else None


def _part_resolution(part: dict) -> str | None:
    """A part's own `mediaResolution` (`{"level": "MEDIA_RESOLUTION_LOW"}`), which Gemini 3 models take per
    part, in requests and in a cache's contents alike (ai.google.dev/gemini-api/docs/media-resolution)."""
    value = _get(part, "mediaResolution", "media_resolution")
    if isinstance(value, dict):
        value = value.get("level")
    return str(value) if value else None


def _video_part(part: dict) -> VideoPart | None:
    inline = _get(part, "inlineData", "inline_data")
    file_data = _get(part, "fileData", "file_data")
    if inline is None and file_data is None:
        return None
    if inline is not None:
        mime = _get(inline, "mimeType", "mime_type") or ""
        try:  # google-genai sends URL-safe base64; REST clients send the standard alphabet
            text = str(inline.get("data") or "").translate(_URLSAFE).strip()
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise invalid("inlineData.data is not valid base64") from None
        video = VideoPart(mime_type=mime, data=data)
    else:
        uri = _get(file_data, "fileUri", "file_uri")
        if not isinstance(uri, str) or not uri:
            raise invalid("fileData.fileUri is missing")
        video = VideoPart(mime_type=_get(file_data, "mimeType", "mime_type") or "", file_uri=uri)
    if not video.mime_type.startswith("video/"):
        return None  # images, audio, PDFs: not a segment the simulator can place
    meta = _get(part, "videoMetadata", "video_metadata") or {}
    video.start_offset_s = parse_duration(
        _get(meta, "startOffset", "start_offset"), "videoMetadata.startOffset"
    )
    video.end_offset_s = parse_duration(_get(meta, "endOffset", "end_offset"), "videoMetadata.endOffset")
    fps = meta.get("fps")
    video.fps = float(fps) if isinstance(fps, int | float) and fps > 0 else None
    if (
        video.start_offset_s is not None
        and video.end_offset_s is not None
        and video.end_offset_s <= video.start_offset_s
    ):
        raise invalid(
            f"videoMetadata.endOffset ({video.end_offset_s}s) must be after startOffset ({video.start_offset_s}s)"
        )
    return video


_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]


def generate_response(
    text: str,
    model: str,
    usage: Usage,
    *,
    finish_reason: str = "STOP",
    empty: bool = False,
    blocked: str | None = None,
    tier: str = "standard",
    cached_tokens: int = 0,
    thoughts: int = 0,
) -> dict:
    """A generateContent answer; `empty` drops the candidates, `blocked` plays a safety block the way Gemini
    does: "candidate" = a candidate without content stopped for SAFETY, "prompt" = promptFeedback.blockReason."""
    details = [{"modality": "TEXT", "tokenCount": usage.text}]
    if usage.video:
        details.append({"modality": "VIDEO", "tokenCount": usage.video})
    if usage.audio:
        details.append({"modality": "AUDIO", "tokenCount": usage.audio})
    body: dict = {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": usage.prompt,
            "candidatesTokenCount": usage.output,
            "totalTokenCount": usage.prompt + usage.output,
            "promptTokensDetails": details,
            "trafficType": "ON_DEMAND_FLEX" if tier == "flex" else "ON_DEMAND",
        },
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(12),
    }
    if cached_tokens:  # counted in promptTokenCount too, as Gemini reports a cache read
        body["usageMetadata"]["cachedContentTokenCount"] = min(cached_tokens, usage.prompt)
    if empty or blocked == "prompt":
        del body["candidates"]
    if blocked == "prompt":
        body["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS}
    elif blocked == "candidate":
        body["candidates"] = [{"finishReason": finish_reason or "SAFETY", "index": 0}]
        if body["candidates"][0]["finishReason"] == "SAFETY":  # a RECITATION stop carries no ratings (#518)
            body["candidates"][0]["safetyRatings"] = _SAFETY_RATINGS
    if empty or blocked:
        body["usageMetadata"].update(candidatesTokenCount=0, totalTokenCount=usage.prompt)
    if thoughts:  # counted against maxOutputTokens and billed as output, reported apart
        body["usageMetadata"].update(thoughtsTokenCount=thoughts, totalTokenCount=usage.prompt + thoughts)
    if not text and finish_reason == "MAX_TOKENS" and not (empty or blocked):
        body["candidates"][0]["content"] = {"role": "model"}  # no parts at all, as Gemini sends it
    return body


def error_body(error: SimError) -> dict:
    body: dict = {"code": error.code, "message": error.message, "status": error.status}
    if error.details:
        body["details"] = error.details
    return {"error": body}


def missing_key() -> SimError:
    """What Gemini says to a request without an API key."""
    return SimError(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API. "
        "(v2s simulator: pass any key in the x-goog-api-key header or ?key=)",
    )


def bad_key() -> SimError:
    """What Gemini says to a key it does not know (a 400, with reason API_KEY_INVALID in the details)."""
    return SimError(
        400,
        "API key not valid. Please pass a valid API key.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    )


def model_resource(name: str, version: str = "v1beta") -> dict:
    check_gemini_model(name, version, "get")
    return {
        "name": f"models/{name}",
        "displayName": name,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": GEMINI_MODELS[served_gemini_model(name)],
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
    }


def unknown_model(model: str, version: str, method: str) -> SimError:
    """What Gemini says to a model name it does not serve (a 404 NOT_FOUND)."""
    try:
        check_gemini_model(model, version, method)
    except SimError as error:
        return error
    raise ValueError(f"{model} is served")  # pragma: no cover - callers ask only about unknown names
