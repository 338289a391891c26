"""Every attempt the provider bills is in the stage's usage: an empty answer that was retried and a blocked one
are billed for their prompt (Gemini and OpenAI-compatible servers both report usage on them), over the real
SDKs to the simulator."""

from __future__ import annotations

import pytest

from annotator.gateway import Gateway, Media
from annotator.simulator.scenarios import Scenario
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import MODELS, settings_for
from workers.storage import file_sha256


def plot(play, proxy, api: str, flags: list[str]):
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    with SimulatorServer(play, behaviours=Scenario.from_flags(flags)) as server:
        gateway = Gateway(settings_for(server))
        return PlotReasoner(gateway, backend=api, model=MODELS[api]).reason(segment, None)


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_an_empty_answer_that_was_retried_is_billed_too(play, proxy, api):
    clean = plot(play, proxy, api, [])
    retried = plot(play, proxy, api, ["empty@plot:1"])
    assert clean.ok and retried.ok
    assert retried.usage.calls == 2
    assert retried.usage.input_tokens == 2 * clean.usage.input_tokens
    assert retried.usage.cost_usd == pytest.approx(2 * clean.usage.cost_usd - _output_cost(clean))


@pytest.mark.parametrize("api", ["gemini", "openai"])
@pytest.mark.parametrize("flag", ["blocked@plot", "prompt_blocked@plot"])
def test_a_blocked_answer_is_billed_for_its_prompt(play, proxy, api, flag):
    clean = plot(play, proxy, api, [])
    blocked = plot(play, proxy, api, [flag])
    assert blocked.outcome == "blocked"
    assert (blocked.usage.calls, blocked.usage.input_tokens) == (1, clean.usage.input_tokens)


def _output_cost(result) -> float:
    """What the answer's output cost (the empty attempt had none)."""
    from annotator.pricing import load_price_table

    return result.usage.output_tokens * load_price_table().price(result.model).output_per_m / 1e6


def test_a_blocked_batch_item_is_billed_at_the_batch_price(play, proxy):
    import time

    from annotator.gateway.batch import BatchRun
    from annotator.simulator.batch_store import BatchPlay

    scenario = Scenario.from_flags(["blocked@plot"])
    with SimulatorServer(
        play, behaviours=scenario, batches=BatchPlay(pending_s=0.05, running_s=0.05)
    ) as server:
        settings = settings_for(server)
        gateway = Gateway(settings)
        segment = SegmentInput(
            index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
        )
        ask = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"]).ask(segment, None)
        rounds, api = BatchRun(settings), gateway.batches("gemini")
        state = rounds.item(ask)
        name = api.submit_batch(ask.model, {"k": state.request}, "billing-test")
        deadline = time.monotonic() + 10
        while (snapshot := api.batch(name, ask.model)).state == "open":  # the client's own polling
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = rounds.settle(ask, state, snapshot.results.get("k"))
    assert result is not None and result.outcome == "blocked"
    assert result.usage.calls == 1 and result.usage.input_tokens > 0 and result.usage.tier == "batch"
    price = settings.price(MODELS["gemini"])
    assert result.usage.cost_usd == pytest.approx(result.usage.input_tokens * price.input_per_m / 2e6)
