"""Service tiers through the REAL SDKs over HTTP to the simulator: a stage set to Flex sends `service_tier`
(Gemini's `serviceTier`, OpenAI's `service_tier`), is billed at the tier the answer says served it (half price on
Gemini, from the price table), and falls back to the standard tier after the configured number of sheds."""

from __future__ import annotations

import pytest

from annotator.gateway import Gateway, Media
from annotator.pricing import load_price_table
from annotator.simulator.flex import FlexPlay
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import MODELS, settings_for
from workers.storage import file_sha256


def ask_plot(server: SimulatorServer, api: str, proxy, **overrides):
    settings = settings_for(server, **overrides)
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    result = PlotReasoner(Gateway(settings), backend=api, model=MODELS[api]).reason(segment, None)
    assert result.ok, result.error
    return result, settings


def test_flex_is_asked_for_and_billed_at_half_the_standard_price(play, proxy):
    with SimulatorServer(play) as server:
        standard, settings = ask_plot(server, "gemini", proxy)
        assert server.flex.requests == 0 and standard.usage.tier == "standard"
        flex, _ = ask_plot(server, "gemini", proxy, plot_tier="flex")
        assert server.flex.requests == 1 and flex.usage.tier == "flex"
    price = load_price_table().price(MODELS["gemini"])
    assert price.tiers["flex"] == 0.5
    # the same request and answer, so the same tokens; the dollars are the table's, at each tier
    assert (flex.usage.input_tokens, flex.usage.output_tokens) == (
        standard.usage.input_tokens,
        standard.usage.output_tokens,
    )
    expected = price.cost(standard.usage.input_tokens, standard.usage.output_tokens)
    assert standard.usage.cost_usd == pytest.approx(expected)
    assert flex.usage.cost_usd == pytest.approx(expected / 2)
    assert settings.price(MODELS["gemini"]) == price


def test_openai_compatible_servers_get_service_tier_flex(play, proxy):
    with SimulatorServer(play) as server:
        result, _ = ask_plot(server, "openai", proxy, plot_tier="flex")
        assert server.flex.requests == 1
    assert result.usage.tier == "flex"  # the server said so (`service_tier` in the completion)


@pytest.mark.parametrize(
    ("max_sheds", "flex_calls", "tier"),
    [
        (2, 3, "flex"),  # shed on the 2nd request only: one shed is within the allowance, Flex goes on
        (1, 2, "standard"),  # the first shed uses the allowance up: the retry is sent at the standard tier
        (0, 2, "standard"),  # no allowance: after a shed, standard at once
    ],
)
def test_flex_sheds_fall_back_to_the_standard_tier_as_configured(play, proxy, max_sheds, flex_calls, tier):
    # every 2nd Flex request is shed (503): the 1st call succeeds at Flex, the 2nd call's first try is shed
    with SimulatorServer(play, flex=FlexPlay(shed_every=2)) as server:
        ask_plot(server, "gemini", proxy, plot_tier="flex", flex_max_sheds=max_sheds)
        result, _ = ask_plot(server, "gemini", proxy, plot_tier="flex", flex_max_sheds=max_sheds)
        assert server.flex.sheds == 1
        assert server.flex.requests == flex_calls
        statuses = [r.status for r in server.requests if r.endpoint == "generateContent"]
        assert statuses == [200, 503, 200]
    assert result.usage.tier == tier and result.usage.calls == 1


def test_a_price_file_of_the_users_overrides_the_bundled_table(tmp_path, play, proxy):
    prices = tmp_path / "prices.json"
    prices.write_text(
        '{"version": "team-2027-01", "models": {"gemini-3.8-flash": {"input_per_m": 1.0, "output_per_m": 1.0,'
        ' "tiers": {"flex": 0.25}}}}'
    )
    with SimulatorServer(play) as server:
        result, settings = ask_plot(server, "gemini", proxy, plot_tier="flex", prices_file=str(prices))
    used = result.usage.input_tokens + result.usage.output_tokens
    assert result.usage.cost_usd == pytest.approx(used / 1e6 * 0.25)
    assert settings.price_table().version == "team-2027-01"
    assert settings.price("deepseek-flash") == load_price_table().price("deepseek-flash")  # bundled kept
    # the file's prices, the bundled catalog's limits (a price file need not repeat them)
    assert settings.price("gemini-3.8-flash").max_output_tokens == 65536


def test_a_model_without_flex_is_asked_again_at_the_standard_tier(play, proxy):
    """Google answers 400 "Flex API is not supported for model: …" for a model without the tier: the call goes
    on at the standard tier at once (billed as standard), instead of failing the stage as a bad request."""
    with SimulatorServer(play, flex=FlexPlay(models=frozenset())) as server:
        result, _ = ask_plot(server, "gemini", proxy, plot_tier="flex")
        statuses = [r.status for r in server.requests if r.endpoint == "generateContent"]
    assert statuses == [400, 200] and result.usage.tier == "standard"
