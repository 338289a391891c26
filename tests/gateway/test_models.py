"""Current models only: the defaults come from the catalog, and a retired, unpriced or unserved model stops the
job before any work, with one line naming the stage and the fix. The simulator, like Gemini and DeepSeek,
refuses retired names over the real SDKs."""

from __future__ import annotations

import openai
import pytest
from google import genai
from google.genai import errors, types

from annotator.gateway.base import ModelCallError
from annotator.pricing import Price, load_price_table
from annotator.settings import ModelSettings
from annotator.simulator.server import SimulatorServer
from jobs.runner import check_model_access
from tests.support.gateway import KEY, settings_for


def test_the_defaults_are_current_priced_models_of_the_catalog():
    settings = ModelSettings(_env_file=None)
    table = load_price_table()
    for stage in ("plot", "script", "distill"):
        model = getattr(settings, f"{stage}_model")
        assert table.known(model) and model not in table.retired, (stage, model)
        price = table.price(model)
        assert price.input_per_m > 0 and price.output_per_m > 0 and price.max_output_tokens


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"plot_model": "gemini-2.5-pro"}, "plot: model gemini-2.5-pro was retired"),
        ({"distill_model": "deepseek-chat"}, "V2S_DISTILL_MODEL=deepseek-flash"),
        ({"script_model": "gemini-3.1-flash-lite"}, "script: model gemini-3.1-flash-lite has no price"),
    ],
)
def test_a_retired_or_unpriced_model_stops_the_job_before_any_call(play, values, says):
    with SimulatorServer(play) as server:
        with pytest.raises(ModelCallError) as refused:
            check_model_access(settings_for(server, **values))
        assert server.requests == []  # decided from the catalog: nothing asked, nothing paid
    assert refused.value.outcome == "config" and says in str(refused.value)


def test_a_model_priced_by_the_user_passes(play):
    price = Price(input_per_m=0.25, output_per_m=1.5)
    with SimulatorServer(play) as server:
        check_model_access(
            settings_for(
                server, script_model="gemini-3.1-flash-lite", prices={"gemini-3.1-flash-lite": price}
            )
        )


def test_a_model_the_server_does_not_serve_is_named_with_its_stage(play):
    """A name the catalog prices but the server does not list (a user's price for a typo)."""
    prices = {"gemini-3.8-flsh": Price(input_per_m=1, output_per_m=1)}
    with SimulatorServer(play) as server, pytest.raises(ModelCallError) as refused:
        check_model_access(settings_for(server, plot_model="gemini-3.8-flsh", prices=prices))
    assert refused.value.outcome == "config"
    assert str(refused.value).startswith("plot: Gemini does not serve model gemini-3.8-flsh")


def test_the_simulator_answers_retired_names_like_the_providers(play):
    with SimulatorServer(play) as server:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        with pytest.raises(errors.APIError) as gone:
            client.models.generate_content(model="gemini-2.5-pro", contents="hello")
        assert gone.value.code == 404 and gone.value.status == "NOT_FOUND"
        assert client.models.get(model="gemini-3.8-flash").output_token_limit == 65536
        chat = openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="Model Not Exist"):
            chat.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "hi"}])
        served = {m.id for m in chat.models.list()}
    assert {"deepseek-flash", "deepseek-v4-pro"} <= served and "deepseek-chat" not in served


def test_plan_refuses_a_retired_model_before_splitting(tmp_path, monkeypatch):
    from jobs.plan import PlanOptions, plan_job
    from jobs.runner import JobSpec

    monkeypatch.setenv("V2S_PLOT_MODEL", "gemini-2.5-pro")
    spec = JobSpec(source=str(tmp_path / "no-such-video.mp4"), out=tmp_path / "out")
    with pytest.raises(ModelCallError, match=r"V2S_PLOT_MODEL=gemini-3\.8-flash"):
        plan_job(spec, PlanOptions())  # refused before the (missing) source is even looked at
    assert not (tmp_path / "out").exists()


def test_a_price_past_its_announced_change_is_warned_about(caplog):
    from annotator.gateway.preflight import check_catalog

    stale = {"gemini-3.8-flash": Price(valid_until="2026-01-31")}
    check_catalog(ModelSettings(_env_file=None, prices=stale))
    assert "announced to change after 2026-01-31" in caplog.text
