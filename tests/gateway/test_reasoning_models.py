"""OpenAI's reasoning models (o-series, gpt-5 family) over the real openai SDK to the simulator: they refuse
`max_tokens` and any temperature but the default, so the gateway sends `max_completion_tokens` and no
temperature to the models the catalog marks `openai_reasoning`, and `v2s check` passes for them."""

from __future__ import annotations

import openai
import pytest

from annotator.gateway import Gateway
from annotator.gateway.base import ModelCallError
from annotator.pricing import Price
from annotator.prompting import render
from annotator.schemas import DistilledThinking
from annotator.simulator.server import SimulatorServer
from jobs.check import check_models
from tests.support.gateway import KEY, settings_for
from tests.support.recording import Recording

REASONING = "gpt-5.4-mini"


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play, behaviours=Recording()) as running:
        yield running


def test_the_simulator_refuses_max_tokens_and_temperature_like_openai(server):
    chat = openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
    hello = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.BadRequestError) as budget:
        chat.chat.completions.create(model=REASONING, messages=hello, max_tokens=100)
    assert budget.value.message.endswith(
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead."
    )
    assert budget.value.code == "unsupported_parameter" and budget.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as temperature:
        chat.chat.completions.create(
            model=REASONING, messages=hello, max_completion_tokens=100, temperature=0.2
        )
    assert "'temperature' does not support 0.2 with this model. Only the default (1) value is supported." in (
        temperature.value.message
    )
    assert temperature.value.code == "unsupported_value" and temperature.value.param == "temperature"
    # what the model takes: max_completion_tokens, and the default temperature (or none)
    chat.chat.completions.create(model=REASONING, messages=hello, max_completion_tokens=100, temperature=1)
    assert chat.chat.completions.create(model=REASONING, messages=hello, max_completion_tokens=100).choices


def test_a_reasoning_model_gets_max_completion_tokens_and_no_temperature(server):
    before = len(server.behaviours.seen)
    result = Gateway(settings_for(server)).structured(
        stage="distill",
        backend="openai",
        model=REASONING,
        prompt=render("distill", plot={}, script={}),
        schema=DistilledThinking,
    )
    assert result.ok, result.error
    (sent,) = server.behaviours.seen[before:]
    assert sent.max_output_tokens == 32768  # V2S_MAX_OUTPUT_TOKENS, sent as max_completion_tokens


def test_check_passes_for_a_reasoning_model(server):
    report = check_models(settings_for(server, distill_model=REASONING))
    assert [s.outcome for s in report.stages] == ["ok"] * 4
    assert report.cost_usd > 0  # priced from the catalog


def test_check_names_the_fix_when_the_catalog_does_not_mark_the_model(server):
    """A reasoning model the catalog does not know as one (a user's price without the mark) is refused by the
    server; the check's one line says how to mark it."""
    unmarked = {REASONING: Price(input_per_m=0.75, output_per_m=4.5, openai_reasoning=False)}
    with pytest.raises(ModelCallError) as refused:
        check_models(settings_for(server, distill_model=REASONING, prices=unmarked))
    message = str(refused.value)
    assert message.startswith(f"distill: {REASONING} refused")
    assert "'openai_reasoning': true" not in message and '"openai_reasoning": true' in message
