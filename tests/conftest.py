"""Shared fixtures: real SQLite and PostgreSQL databases, the sample film, the simulator."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.support.db"]


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch):
    """Tests never see the developer's real model keys."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield


def require_postgres() -> bool:
    return os.environ.get("V2S_REQUIRE_POSTGRES") == "1"
