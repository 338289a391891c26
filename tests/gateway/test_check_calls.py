"""The check's tiny structured calls and what answers carry (the model version that answered, thinking tokens),
over the real google-genai and openai SDKs to the simulator over HTTP."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from annotator.gateway import Gateway
from annotator.gateway.base import ModelRequest
from annotator.gateway.preflight import probe, same_model, stage_schemas
from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot, NextSegmentPlot, Script
from annotator.simulator.scenarios import Scenario
from annotator.simulator.server import SimulatorServer
from jobs.check import check_models
from tests.support.gateway import KEY, fast_scenario, settings_for


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play) as running:
        yield running


def test_an_alias_is_answered_by_its_target_and_the_answer_names_it(server):
    """Gemini answers an auto-updated alias (-latest) with the model it points to; only modelVersion says so."""
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
    answer = client.models.generate_content(model="gemini-flash-latest", contents="hello")
    assert answer.model_version == "gemini-3.8-flash"
    assert client.models.get(model="gemini-flash-latest").output_token_limit == 65536
    assert "models/gemini-flash-latest" in {m.name for m in client.models.list()}
    direct = client.models.generate_content(model="gemini-3.8-flash", contents="hello")
    assert direct.model_version == "gemini-3.8-flash"


def test_a_pinned_version_of_the_model_is_not_routing():
    assert same_model("gemini-2.0-pro", "gemini-2.0-pro-002")
    assert same_model("gpt-4o", "gpt-4o-2024-08-06")
    assert same_model("gemini-3.8-flash", "models/gemini-3.8-flash")
    assert same_model("deepseek-flash", None)  # the response does not say: nothing to compare
    assert not same_model("gemini-flash-latest", "gemini-3.8-flash")


def test_the_probe_sends_the_stages_request_shape_and_reads_the_server_limit(server, play):
    settings = settings_for(server, distill_model="v2s-sim")
    gateway = Gateway(settings)
    for schema in (FirstSegmentPlot, NextSegmentPlot, Script):
        found = probe(gateway.backend("gemini"), settings, "plot", "gemini-3.8-flash", schema)
        assert found.outcome == "ok" and found.served_model == "gemini-3.8-flash", found
        assert found.thinking == "medium" and found.max_output_tokens == settings.max_output_for(found.model)
        assert found.cost_usd > 0 and found.input_tokens > 0
    (distill,) = stage_schemas()["distill"]
    vllm = probe(gateway.backend("openai"), settings, "distill", "v2s-sim", distill)
    assert vllm.outcome == "ok" and vllm.server_limit == server.max_model_len  # GET /v1/models max_model_len


def test_check_calls_are_never_numbered_nor_disturbed_nor_counted_as_model_calls(play, proxy):
    """A scenario's `requests: [1]` still means the first stage call after a check: the check is kept apart."""
    scenario = Scenario.model_validate({"rules": [{"kind": "server_error", "requests": [1]}]})
    with SimulatorServer(play, behaviours=scenario) as server:
        report = check_models(settings_for(server))
        assert [s.outcome for s in report.stages] == ["ok"] * 4 and report.cost_usd > 0
        assert server.request_count() == 0 and server.check_count() == 4
        assert {r.endpoint for r in server.requests if r.endpoint.startswith("check.")} == {
            "check.generateContent",
            "check.chat.completions",
        }
        # the first model call is still the scenario's first
        from annotator.gateway.base import Media
        from workers.storage import file_sha256

        gateway = Gateway(settings_for(server, max_attempts=1))
        result = gateway.structured(
            stage="plot",
            backend="gemini",
            model="gemini-3.8-flash",
            prompt=render("plot_first", 1, segment_index=1, duration="30s"),
            schema=FirstSegmentPlot,
            media=Media(path=proxy, sha256=file_sha256(proxy)),
        )
        assert result.outcome == "server_error" and scenario.played() == [1]


def test_a_refused_check_is_recorded_as_a_check(play):
    """A check the server refuses (an unserved name with a user's price) is not a stage's model call either."""
    from annotator.pricing import Price

    with SimulatorServer(play) as server:
        settings = settings_for(server, prices={"gemini-9-nope": Price(input_per_m=1, output_per_m=1)})
        found = probe(Gateway(settings).backend("gemini"), settings, "script", "gemini-9-nope", Script)
        assert found.outcome == "failed" and "V2S_SCRIPT_MODEL" in found.problem
        assert server.request_count() == 0 and server.check_count() == 1


def test_thinking_tokens_are_read_from_both_apis(server):
    """OpenAI-compatible: completion_tokens_details.reasoning_tokens (the simulator's distillation reasons);
    Gemini: thoughtsTokenCount (here when thinking used the whole output budget). Both are of output_tokens."""
    settings = settings_for(server)
    prompt = render("distill", plot={}, script={})
    request = ModelRequest(stage="distill", model="deepseek-flash", prompt=prompt.text, prompt_version="t")
    answer = Gateway(settings).backend("openai").generate(request)
    assert 0 < answer.thinking_tokens < answer.output_tokens and answer.served_model == "deepseek-flash"

    with SimulatorServer(server.screenplay, behaviours=fast_scenario("max_tokens_empty")) as thinking:
        gemini = Gateway(settings_for(thinking)).backend("gemini")
        asked = ModelRequest(
            stage="distill",
            model="gemini-3.8-flash",
            prompt=prompt.text,
            prompt_version="t",
            max_output_tokens=900,
        )
        cut = gemini.generate(asked)
        assert cut.truncated and cut.thinking_tokens == 900 == cut.output_tokens
