"""`max_tokens` per model on OpenAI-compatible servers, over the real openai SDK to the simulator: never more than
the model's documented maximum (DeepSeek answers 400 outside [1, 384K]), and on a vLLM server that lists
`max_model_len` in GET /v1/models, never more than the prompt leaves of it (vLLM answers 400 otherwise)."""

from __future__ import annotations

import openai
import pytest

from annotator.gateway import Gateway, Media
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import KEY, settings_for
from tests.support.recording import Recording
from workers.storage import file_sha256


def plot(server: SimulatorServer, proxy, model: str, **overrides):
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    gateway = Gateway(settings_for(server, **overrides))
    return PlotReasoner(gateway, backend="openai", model=model).reason(segment, None)


def test_max_tokens_stays_within_deepseeks_range(play, proxy):
    scenario = Recording()
    with SimulatorServer(play, behaviours=scenario) as server:
        result = plot(server, proxy, "deepseek-flash", max_output_tokens=500_000)
    assert result.ok, result.error
    assert [i.max_output_tokens for i in scenario.seen] == [384_000]


def test_max_tokens_fits_a_vllm_servers_max_model_len(play, proxy):
    scenario = Recording()
    with SimulatorServer(play, behaviours=scenario) as server:
        server.max_model_len = 12_000
        result = plot(server, proxy, "v2s-sim")
    assert result.ok, result.error
    (sent,) = [i.max_output_tokens for i in scenario.seen]
    assert 0 < sent < 12_000 - 600  # the prompt's ~640 text tokens fit beside it


def test_vllms_refusal_names_what_is_left_for_a_second_try(play):
    """Video tokens cannot be counted before sending; vLLM's 400 names the prompt's size, and the backend asks
    once more with what is left (the parse, on the simulator's real 400)."""
    from annotator.gateway.openai_compat import _fitted

    with SimulatorServer(play) as server:
        chat = openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
        with pytest.raises(openai.BadRequestError) as refused:
            chat.chat.completions.create(
                model="v2s-sim", messages=[{"role": "user", "content": "x" * 400}], max_tokens=32768
            )
    assert _fitted(refused.value, 32768) == 32768 - 100


def test_the_simulator_refuses_out_of_range_max_tokens_like_deepseek_and_vllm(play):
    with SimulatorServer(play) as server:
        chat = openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
        hello = [{"role": "user", "content": "hello"}]
        with pytest.raises(openai.BadRequestError, match=r"valid range of max_tokens is \[1, 384000\]"):
            chat.chat.completions.create(model="deepseek-flash", messages=hello, max_tokens=500_000)
        with pytest.raises(openai.BadRequestError, match="maximum context length is 32768 tokens"):
            chat.chat.completions.create(model="v2s-sim", messages=hello, max_tokens=32768)
        listed = {m.id: (m.model_extra or {}).get("max_model_len") for m in chat.models.list()}
    assert listed["v2s-sim"] == 32768
