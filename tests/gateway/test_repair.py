"""After an answer whose thinking used the whole output budget (MAX_TOKENS and no text), the repair turn asks
again without an empty part (Gemini refuses those: 400 "required oneof field 'data'"), with the model's largest
output budget and one step less thinking; every call sends the catalog's thinking and temperature. Over the
real SDKs to the simulator, which records what arrived."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from annotator.gateway import Gateway, Media
from annotator.pricing import load_price_table
from annotator.simulator.behaviours import Fault
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import KEY, MODELS, settings_for
from tests.support.recording import Recording
from workers.storage import file_sha256


def plot(server: SimulatorServer, api: str, proxy, **overrides):
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    gateway = Gateway(settings_for(server, **overrides))
    return PlotReasoner(gateway, backend=api, model=MODELS[api]).reason(segment, None)


def test_thinking_that_used_the_budget_is_repaired_with_more_room_and_less_thinking(play, proxy):
    scenario = Recording.of("max_tokens_empty@plot:1")
    with SimulatorServer(play, behaviours=scenario) as server:
        result = plot(server, "gemini", proxy)
        statuses = [r.status for r in server.requests if r.endpoint == "generateContent"]
    assert result.ok, result.error
    assert statuses == [200, 200]  # no 400 for an empty part
    first, repair = scenario.seen
    catalog = load_price_table().price(MODELS["gemini"])
    assert (first.thinking_level, first.max_output_tokens) == ("medium", 32768)
    assert (repair.thinking_level, repair.max_output_tokens) == ("low", catalog.max_output_tokens)
    assert first.temperature == repair.temperature == catalog.temperature == 1.0  # Gemini 3 guidance
    # both attempts are billed: the first one's thinking tokens are output
    assert result.usage.calls == 2 and result.usage.output_tokens > 32768


def test_a_temperature_the_user_sets_wins_over_the_catalog(play, proxy):
    scenario = Recording()
    with SimulatorServer(play, behaviours=scenario) as server:
        assert plot(server, "gemini", proxy, temperature=0.3).ok
    assert [i.temperature for i in scenario.seen] == [0.3]


def test_the_simulator_refuses_an_empty_part_like_gemini(play):
    with SimulatorServer(play) as server:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        contents = [
            types.Content(role="user", parts=[types.Part.from_text(text="Say hi as JSON.")]),
            types.Content(role="model", parts=[types.Part.from_text(text="")]),
            types.Content(role="user", parts=[types.Part.from_text(text="Again.")]),
        ]
        with pytest.raises(errors.APIError) as refused:
            client.models.generate_content(model=MODELS["gemini"], contents=contents)
    assert refused.value.code == 400
    assert "contents[1].parts[0].data: required oneof field 'data'" in refused.value.message


def test_the_simulator_refuses_a_thinking_level_the_model_does_not_take(play):
    """gemini-3.8-flash has no MINIMAL; the catalog's levels for it are the ones the simulator accepts."""
    with SimulatorServer(play) as server:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        config = types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.MINIMAL)
        )
        with pytest.raises(errors.APIError) as refused:
            client.models.generate_content(model="gemini-3.8-flash", contents="hello", config=config)
    assert refused.value.code == 400 and "MINIMAL" in refused.value.message
    assert "minimal" not in (load_price_table().price("gemini-3.8-flash").thinking.levels)


# What degenerate batch answers and misspelt keys look like: templates that validate (every field has a
# default) but hold nothing.
EMPTY_TEMPLATES = {
    "plot_first": '{"segment_info": {"segment_index": 1}, "characters": [], "plot_summary": {}}',
    "script": '{"meta": {}, "scenes": [{"scene_id": 1, "events": [{"timestamp": "00:01"}]}]}',
}


class _TemplateFirst(Recording):
    """The first answer of each stage is an empty template; later ones are real."""

    def before_answer(self, request):
        super().before_answer(request)
        first = sum(1 for seen in self.seen if seen.stage == request.stage) == 1
        return Fault(answer_text=EMPTY_TEMPLATES[request.stage.value]) if first else None


def test_an_empty_template_is_repaired_never_accepted(play, proxy):
    """A plot with no characters and no summary, or a script whose scenes sit under an unknown key, is invalid
    output: one repair turn, then the real answer (never an empty plot for the memory, never a 'no events'
    rejection that a resume could not undo)."""
    from annotator.stages import ScriptWriter

    scenario = _TemplateFirst()
    with SimulatorServer(play, behaviours=scenario) as server:
        result = plot(server, "gemini", proxy)
        segment = SegmentInput(
            index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
        )
        script = ScriptWriter(Gateway(settings_for(server)), backend="gemini", model=MODELS["gemini"]).write(
            segment, [], ""
        )
    assert result.ok and result.value.characters and result.usage.calls == 2, result.error
    assert script.ok and script.value.events() and script.usage.calls == 2, script.error
