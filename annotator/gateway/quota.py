"""What a Gemini 429 says in its body: how long to wait (google.rpc.RetryInfo) and whether a per-day quota is
spent (google.rpc.QuotaFailure). Gemini sends no Retry-After header; the wait is in `error.details[]`."""

from __future__ import annotations

import re

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _details(body: object) -> list[dict]:
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def retry_delay_s(body: object) -> float | None:
    """RetryInfo.retryDelay ("37s", "0.200s") in seconds, or None."""
    for detail in _details(body):
        if detail.get("@type") == _RETRY_INFO:
            match = _DURATION.match(str(detail.get("retryDelay") or ""))
            if match:
                return float(match.group(1))
    return None


def daily_quota(body: object) -> str | None:
    """The quotaId of a spent per-day quota (e.g. GenerateRequestsPerDayPerProjectPerModel), or None: waiting
    seconds will not help, the quota resets at midnight Pacific time."""
    for detail in _details(body):
        if detail.get("@type") != _QUOTA_FAILURE:
            continue
        for violation in detail.get("violations") or []:
            quota = str((violation or {}).get("quotaId") or "")
            if "PerDay" in quota:
                return quota
    return None


def storage_quota(body: object) -> int | None:
    """The project's Files API storage cap in bytes when this 429 is for it (QuotaFailure quotaId
    FileStorageBytesPerProject, alphaXiv/feedback#16), else None. Its RetryInfo asks for int64-max seconds
    (python-genai#1172): only deleting files, or their 48 h expiry, makes room."""
    for detail in _details(body):
        if detail.get("@type") != _QUOTA_FAILURE:
            continue
        for violation in detail.get("violations") or []:
            if str((violation or {}).get("quotaId") or "") == "FileStorageBytesPerProject":
                value = str(violation.get("quotaValue") or "")
                return int(value) if value.isdigit() else 20 * 2**30
    return None
