"""Small helpers shared by the backends for turning HTTP failures into safe, specific errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def configured_secrets(settings) -> list[str]:
    """Every key in the settings: a provider may echo any of them (a proxy fronting both, a pasted key), so each
    backend redacts them all, not only its own."""
    found = []
    for name in ("gemini_api_key", "openai_api_key"):
        value = getattr(settings, name, None)
        if value is not None and value.get_secret_value():
            found.append(value.get_secret_value())
    return found


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP date), or None."""
    value = None
    for key in ("retry-after", "Retry-After"):
        if key in headers:
            value = headers[key]
            break
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
