"""Errors the simulator answers with: an HTTP status plus the API's status word and a clear message."""

from __future__ import annotations

# Gemini's google.rpc status names by HTTP code (what the real API puts in error.status).
GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "DEADLINE_EXCEEDED",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class SimError(Exception):
    """A request the simulator refuses; `status` overrides the status word derived from the code."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or GEMINI_STATUS.get(code, "UNKNOWN")
        self.headers = headers or {}
        self.details = details
        self.param = param  # OpenAI's error.param: the request field refused


def invalid(message: str) -> SimError:
    return SimError(400, message)
