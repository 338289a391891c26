"""A wrong or missing API key: `v2s run` stops at the first call with one clear line naming the variable to set,
no traceback, and nothing annotated (the key is fatal for the job, not a failure of every segment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from tests.support.play import make_proxy, segment_provenance, small_screenplay

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

RIGHT = "sim-the-right-key-7731"
WRONG = "sim-a-wrong-key-0042"


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    return make_proxy(tmp_path_factory.mktemp("film") / "film.mp4", segment_provenance(1, 0.0, 30.0))


@pytest.fixture()
def server():
    with SimulatorServer(small_screenplay(), api_keys={RIGHT}) as running:
        yield running


def env_for(server: SimulatorServer, gemini: str | None, openai: str | None) -> dict[str, str]:
    env = {
        "V2S_GEMINI_BASE_URL": server.base_url,
        "V2S_OPENAI_BASE_URL": server.base_url + "/v1",
    }
    if gemini is not None:
        env["GEMINI_API_KEY"] = gemini
    if openai is not None:
        env["DEEPSEEK_API_KEY"] = openai
    return env


def run_cli(monkeypatch, tmp_path: Path, film: Path, env: dict[str, str]):
    for name in ("V2S_GEMINI_API_KEY", "V2S_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    return CliRunner().invoke(app, ["run", str(film), "--out", str(tmp_path / "out"), "--num-cpus", "2"])


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    ("gemini", "openai", "variable"),
    [
        (WRONG, RIGHT, "GEMINI_API_KEY"),
        (RIGHT, WRONG, "DEEPSEEK_API_KEY"),
        (None, RIGHT, "GEMINI_API_KEY"),
        (RIGHT, None, "DEEPSEEK_API_KEY"),
    ],
)
def test_a_bad_key_stops_the_job_with_one_line_naming_the_variable(
    server, film, tmp_path, monkeypatch, gemini, openai, variable
):
    result = run_cli(monkeypatch, tmp_path, film, env_for(server, gemini, openai))
    assert result.exit_code == 2
    line = one_line(result.output)
    assert line.startswith("error: ") and variable in line
    assert WRONG not in line and RIGHT not in line
    assert server.request_count() == 0  # no model call was paid for
    assert not (tmp_path / "out" / "proxies").exists()  # no video was even split


def test_the_real_command_prints_one_line_on_stderr_and_no_traceback(server, film, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(env_for(server, WRONG, RIGHT))
    v2s = Path(sys.executable).with_name("v2s")
    done = subprocess.run(
        [str(v2s), "run", str(film), "--out", str(tmp_path / "out")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stdout.strip() == ""
    line = one_line(done.stderr)
    assert "GEMINI_API_KEY" in line and "rejected" in line and WRONG not in line
