"""No secret leaks: a job (with failing calls whose error texts even echo the key back) runs with distinctive keys,
then every place the engine writes to is searched for them: captured stdout/stderr and log records, the Ray
session's logs, every text/JSON column of every table, shards, rejects, manifest, proxies, and exception texts."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest
import ray
from sqlalchemy import inspect, select, text

from annotator.gateway.base import ModelCallError, ModelRequest
from annotator.gateway.gemini import GeminiBackend
from annotator.gateway.openai_compat import OpenAICompatBackend
from annotator.settings import ModelSettings
from annotator.simulator.scenarios import FaultRule, Scenario
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, check_model_access, run_job
from profiles_db.db import Database, sqlite_url
from tests.support.films import film_copy

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

GEMINI_KEY = "sim-gemini-SECRET-9f3a71c2"
OPENAI_KEY = "sim-deepseek-SECRET-4be802d9"
SECRETS = (GEMINI_KEY, OPENAI_KEY)


def echo(kind: str, **where) -> FaultRule:
    """A fault whose error text quotes the key, as some providers do: only redaction keeps it out."""
    return FaultRule(kind=kind, message=f"quota exceeded for API key {GEMINI_KEY} / {OPENAI_KEY}", **where)


def leaks(where: str, content: str | bytes) -> list[str]:
    data = content.encode() if isinstance(content, str) else content
    return [f"{where} contains {s[:12]}…" for s in SECRETS if s.encode() in data]


def scan_files(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            found += leaks(str(path), path.read_bytes())
    return found


def scan_database(url: str) -> tuple[list[str], int]:
    """Every column of every table, as text."""
    db = Database(url)
    found, cells = [], 0
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for column, value in row._mapping.items():
                    cells += 1
                    found += leaks(f"{table}.{column}", str(value))
    db.dispose()
    return found, cells


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    return film_copy(Screenplay.load(), tmp_path_factory.mktemp("film") / "film.mp4", until_s=110)


def test_no_secret_in_logs_database_outputs_or_exceptions(film, tmp_path, monkeypatch, capfd, caplog):
    scenario = Scenario(
        rules=[
            echo("rate_limit", stage="plot", times=1, retry_after_s=0),
            echo("server_error", stage="script", segment=2),  # fails for good: its error is stored
            echo("unavailable", stage="distill", times=1),
            FaultRule(kind="malformed_json", stage="distill", times=1),
        ]
    )
    caplog.set_level(logging.DEBUG)
    with SimulatorServer(Screenplay.load(), behaviours=scenario) as server:
        for name, value in {
            "V2S_GEMINI_BASE_URL": server.base_url,
            "GEMINI_API_KEY": GEMINI_KEY,
            "V2S_OPENAI_BASE_URL": server.base_url + "/v1",
            "DEEPSEEK_API_KEY": OPENAI_KEY,
            "V2S_CALL_ATTEMPTS": "2",
            "V2S_RETRY_INITIAL_WAIT_S": "0.01",
            "V2S_RETRY_MAX_WAIT_S": "0.02",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("V2S_GEMINI_API_KEY", "V2S_OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        # address="local": never join a cluster some earlier `ray start` left in /tmp/ray/ray_current_cluster
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=True,
            logging_level=logging.INFO,
        )
        try:
            session = Path(ray._private.worker._global_node.get_session_dir_path())
            out = tmp_path / "out"
            job_id, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60))
        finally:
            ray.shutdown()
        exception_texts = failing_calls(server)
    assert summary.stage_failures and summary.records_written >= 1  # the job did fail some calls
    assert all(n > 0 for n in scenario.played())

    found = scan_files(out)  # shards, manifest, rejects, proxies, the SQLite file and its WAL
    db_found, cells = scan_database(sqlite_url(out / "v2s.sqlite"))
    found += db_found
    assert cells > 100
    stored = Database(sqlite_url(out / "v2s.sqlite"))
    with stored.sessions() as s:
        from profiles_db.models import StageRun

        errors = s.scalars(select(StageRun.error).where(StageRun.error.is_not(None))).all()
    stored.dispose()
    assert any("***" in e for e in errors)  # the echoed key was there and was redacted
    found += scan_files(session / "logs")
    captured = capfd.readouterr()
    found += leaks("stdout", captured.out) + leaks("stderr", captured.err)
    found += leaks("log records", "\n".join(r.getMessage() for r in caplog.records))
    for i, exc_text in enumerate(exception_texts):
        found += leaks(f"exception {i}", exc_text)
    assert len(exception_texts) >= 4
    assert found == [], found
    del job_id


def failing_calls(server: SimulatorServer) -> list[str]:
    """Calls that fail in the driver process, their exceptions formatted as a log would print them."""
    texts = []
    request = ModelRequest(
        stage="distill", model="deepseek-flash", prompt="Say hi as JSON.", prompt_version="t"
    )
    wrong = {"V2S_GEMINI_API_KEY": GEMINI_KEY + "x", "V2S_OPENAI_API_KEY": OPENAI_KEY + "x"}
    right = {"V2S_GEMINI_API_KEY": GEMINI_KEY, "V2S_OPENAI_API_KEY": OPENAI_KEY}
    server.api_keys = frozenset(SECRETS)  # now the simulator checks keys
    server.behaviours = Scenario(rules=[echo("rate_limit"), echo("server_error")])
    for keys in (wrong, right):
        settings = ModelSettings(
            _env_file=None,
            gemini_base_url=server.base_url,
            openai_base_url=server.base_url + "/v1",
            **keys,
        )
        for backend in (GeminiBackend(settings), OpenAICompatBackend(settings)):
            texts.append(repr(settings) + repr(backend.__dict__.get("settings")))
            try:
                backend.generate(request)
            except ModelCallError as exc:
                texts.append("".join(traceback.format_exception(exc)) + repr(exc))
            else:
                raise AssertionError("the call was meant to fail")
        try:
            check_model_access(settings)
        except ModelCallError as exc:
            texts.append("".join(traceback.format_exception(exc)) + repr(exc))
    return texts
