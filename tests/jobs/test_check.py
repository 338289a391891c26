"""`v2s check` over the real SDKs to the simulator over HTTP: a retired, an unpriced and a routed model each
stop with one line naming the stage, the model and the fix (exit status 2) before anything is split; a good
configuration prints what the check cost. `v2s run` checks before it splits."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from tests.support.play import make_proxy, small_screenplay

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

KEY = "sim-check-key"


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(small_screenplay(), api_keys={KEY}) as running:
        yield running


def env_for(server: SimulatorServer, **values: str) -> dict[str, str | None]:
    """Both backends at the simulator, the default models unless `values` say otherwise."""
    names = ("PLOT", "SCRIPT", "DISTILL")
    return {
        "V2S_GEMINI_BASE_URL": server.base_url,
        "V2S_GEMINI_API_KEY": KEY,
        "V2S_OPENAI_BASE_URL": server.base_url + "/v1",
        "V2S_OPENAI_API_KEY": KEY,
        "V2S_PRICES": None,
        "V2S_PRICES_FILE": None,
        "COLUMNS": "250",
        **{f"V2S_{n}_{k}": None for n in names for k in ("MODEL", "BACKEND")},
        **values,
    }


def check(server: SimulatorServer, **values: str):
    return CliRunner().invoke(app, ["check"], env=env_for(server, **values))


def refusal(result) -> str:
    """The one line a refused check prints (stderr), after asserting it is one line and exit status 2."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_a_retired_model_is_refused_naming_its_replacement_before_any_request(server):
    before = len(server.requests)
    line = refusal(check(server, V2S_PLOT_MODEL="gemini-2.5-pro"))
    assert "plot" in line and "gemini-2.5-pro" in line and "V2S_PLOT_MODEL=gemini-3.8-flash" in line
    assert len(server.requests) == before  # decided from the catalog: nothing asked


def test_an_unpriced_model_is_refused_naming_v2s_prices(server):
    line = refusal(check(server, V2S_SCRIPT_MODEL="gemini-3.1-flash-lite"))
    assert "script" in line and "gemini-3.1-flash-lite" in line and "V2S_PRICES=" in line


def test_a_routed_model_is_refused_naming_what_serves_it(server):
    """gemini-flash-latest is an alias the simulator answers with gemini-3.8-flash (modelVersion); the user
    priced the alias, so only the check's call can tell."""
    prices = json.dumps({"gemini-flash-latest": {"input_per_m": 0.75, "output_per_m": 3.75}})
    calls = server.request_count()
    line = refusal(check(server, V2S_PLOT_MODEL="gemini-flash-latest", V2S_PRICES=prices))
    assert "plot: model gemini-flash-latest is served by gemini-3.8-flash" in line
    assert "V2S_PLOT_MODEL=gemini-3.8-flash" in line
    assert server.request_count() == calls  # the check's calls are not counted as the stages' model calls


def test_a_good_configuration_passes_and_prints_what_the_check_cost(server):
    checks = server.check_count()
    result = check(server)
    assert result.exit_code == 0, result.output
    # one call per stage schema: two plot schemas, the script's and the distillation's
    assert server.check_count() == checks + 4
    for shown in ("FirstSegmentPlot", "NextSegmentPlot", "Script", "DistilledThinking", "gemini-3.8-flash"):
        assert shown in result.stdout
    assert "the check cost $0.000" in result.stdout and "(4 calls" in result.stdout
    assert "catalog 2026-12-07" in result.stdout


def test_without_calls_the_check_is_free(server):
    checks = server.check_count()
    result = CliRunner().invoke(app, ["check", "--no-calls"], env=env_for(server))
    assert result.exit_code == 0, result.output
    assert server.check_count() == checks and "the check cost $0.000000 (no calls" in result.stdout


def test_a_request_shape_the_model_refuses_fails_naming_the_fix(server):
    """A thinking level the model does not take (MINIMAL on gemini-3.8-flash, a 400 from the provider), set
    through a price table entry: only a call with the stage's real request can find it."""
    prices = json.dumps(
        {"gemini-3.8-flash": {"thinking": {"control": "level", "levels": ["minimal"], "default": "minimal"}}}
    )
    line = refusal(check(server, V2S_PRICES=prices))
    assert line.startswith("error: plot: gemini-3.8-flash refused") and "thinking" in line


def test_run_with_a_retired_or_routed_model_splits_nothing(server, tmp_path):
    film = make_proxy(tmp_path / "film.mp4", None, seconds=2.0)
    prices = json.dumps({"gemini-flash-latest": {"input_per_m": 0.75, "output_per_m": 3.75}})
    for n, values in enumerate(
        (
            {"V2S_PLOT_MODEL": "gemini-2.5-pro"},
            {"V2S_SCRIPT_MODEL": "gemini-flash-latest", "V2S_PRICES": prices},
        )
    ):
        out = tmp_path / f"out-{n}"
        result = CliRunner().invoke(
            app, ["run", str(film), "--out", str(out), "--num-cpus", "1"], env=env_for(server, **values)
        )
        line = refusal(result)
        assert "V2S_" in line
        assert not (out / "proxies").exists() and not (out / "v2s.sqlite").exists()  # no split, no database
