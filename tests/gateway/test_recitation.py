"""Gemini's RECITATION stop (an answer that would quote long verbatim text: a script's dialogue) through the real
google-genai SDK over HTTP: the stage asks again for paraphrased dialogue at a higher temperature, every
stopped attempt is billed, and a stop that persists fails the stage with a clear reason instead of raising."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

from annotator.gateway import Gateway, Media
from annotator.gateway.structured import RECITATION_HINT
from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.scenarios import Scenario
from annotator.simulator.server import SimulatorServer
from annotator.stages import ScriptWriter, SegmentInput
from tests.support.gateway import KEY, MODELS, fast_scenario, settings_for
from workers.storage import file_sha256


class Recorded(Behaviours):
    """A scenario's faults, with what each model call asked for (its temperature, its stage)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario, self.seen = scenario, []

    def before_answer(self, request: RequestInfo) -> Fault | None:
        self.seen.append(request)
        return self.scenario.before_answer(request)


def write_script(server: SimulatorServer, proxy, **overrides):
    gateway = Gateway(settings_for(server, **overrides))
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    return ScriptWriter(gateway, backend="gemini", model=MODELS["gemini"]).write(segment, [], "")


def test_the_simulator_answers_recitation_as_gemini_does(play, proxy):
    """finishReason RECITATION, no content, the prompt billed (google/generative-ai-docs#518)."""
    with SimulatorServer(play, behaviours=fast_scenario("recitation")) as server:
        gemini = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        video = types.Part.from_bytes(data=proxy.read_bytes(), mime_type="video/mp4")
        answer = gemini.models.generate_content(
            model=MODELS["gemini"], contents=[video, "## Plot synopsis\n"]
        )
    (candidate,) = answer.candidates
    assert candidate.finish_reason == types.FinishReason.RECITATION
    assert candidate.content is None and not candidate.safety_ratings
    assert answer.usage_metadata.prompt_token_count > 0 and not answer.usage_metadata.candidates_token_count


def test_a_recitation_stop_is_asked_again_for_paraphrased_dialogue_and_succeeds(play, proxy):
    """Before: RECITATION was a safety block, and the script stage failed on the first stop."""
    recorded = Recorded(fast_scenario("recitation@script:1"))
    with SimulatorServer(play, behaviours=recorded) as server:
        result = write_script(server, proxy, temperature=1.0)
    assert result.ok, result.error
    assert [r.temperature for r in recorded.seen] == [1.0, pytest.approx(1.2)]
    assert result.usage.calls == 2  # the stopped attempt is billed too
    assert result.usage.input_tokens > 0 and recorded.scenario.played() == [1]


def test_the_repair_turn_carries_the_paraphrase_request(play, proxy, monkeypatch):
    sent: list[str] = []
    from annotator.gateway import gemini as gemini_backend

    original = gemini_backend.GeminiBackend.contents_and_config

    def spy(self, request, **kw):
        sent.append(request.prompt)
        return original(self, request, **kw)

    monkeypatch.setattr(gemini_backend.GeminiBackend, "contents_and_config", spy)
    with SimulatorServer(play, behaviours=fast_scenario("recitation@script:1")) as server:
        assert write_script(server, proxy).ok
    assert RECITATION_HINT not in sent[0] and sent[1].count(RECITATION_HINT) == 1


def test_a_persistent_recitation_fails_the_stage_clearly_and_bills_every_attempt(play, proxy):
    with SimulatorServer(play, behaviours=fast_scenario("recitation@script")) as server:
        result = write_script(server, proxy, repair_turns=2)
        calls = server.request_count("script")
    assert not result.ok and result.outcome == "blocked"
    assert "RECITATION" in result.error and "paraphrasing asked" in result.error
    assert calls == 3 and result.usage.calls == 3  # bounded: the first ask and two repair turns, all billed
