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


@pytest.fixture(scope="module", autouse=True)
def _ray_for_module(request):
    """The shared Ray up for a `shared_ray` module, down for an `own_ray` one (tests/support/ray_session.py);
    a module that runs no job leaves it as it is, so the Ray is not started again after every unit module.
    Module-scoped and autouse: set up before the module's own fixtures that run jobs."""
    from tests.support.ray_session import ensure_shared_ray, stop_shared_ray

    if request.node.get_closest_marker("shared_ray"):
        ensure_shared_ray()
    elif request.node.get_closest_marker("own_ray"):
        stop_shared_ray()
    yield


def require_postgres() -> bool:
    return os.environ.get("V2S_REQUIRE_POSTGRES") == "1"
