"""Answers that parse but break their contract are repaired, never accepted with their content lost or wrong:
a wrapper key, misspelt keys, a character code the prompt never gave, times outside the clip, a looping answer
of megabytes (annotator/schemas/contract.py, annotator/gateway/structured.check_answer). Over the real SDKs to
the simulator, which plays each misbehaviour once; every repaired answer must equal the fault-free one, for one
more model call."""

from __future__ import annotations

import json
import logging

import pytest

from annotator.gateway import Gateway, Media, ModelResponse
from annotator.gateway.structured import check_answer
from annotator.schemas import CharacterProfile, Script
from annotator.schemas.contract import AnswerContract
from annotator.simulator.misshapen import UNKNOWN_CODE, WRAPPER_KEY
from annotator.simulator.scenarios import Scenario
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, ScriptWriter, SegmentInput, ThinkingDistiller, synopsis
from tests.support.gateway import MODELS, settings_for
from tests.support.recording import Recording
from workers.storage import file_sha256


class _Glitches(Recording):
    """One simulator for the module; each test says which misbehaviour it plays."""

    def play(self, *flags: str) -> None:
        with self._lock:
            self.rules = Scenario.from_flags(list(flags)).rules
            self._played.clear()
            self._seen.clear()


@pytest.fixture(scope="module")
def sim(play):
    glitches = _Glitches()
    with SimulatorServer(play, behaviours=glitches) as server:
        yield server, glitches


@pytest.fixture(scope="module")
def stages(sim, proxy):
    """The three stages against the module's simulator, and their fault-free answers."""
    server, glitches = sim
    glitches.play()
    gateway = Gateway(settings_for(server))
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    reasoner = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"])
    writer = ScriptWriter(gateway, backend="gemini", model=MODELS["gemini"])
    distiller = ThinkingDistiller(gateway, backend="openai", model=MODELS["openai"])
    plot = reasoner.reason(segment, None)
    assert plot.ok, plot.error
    profiles = [
        CharacterProfile(id=c.id, name=c.name, appearance=c.appearance) for c in plot.value.characters
    ]
    story = synopsis(plot.value, {})
    script = writer.write(segment, profiles, story)
    assert script.ok, script.error
    thinking = distiller.distill(plot.value, script.value)
    assert thinking.ok, thinking.error
    ask = {
        "plot": lambda: reasoner.reason(segment, None),
        "script": lambda: writer.write(segment, profiles, story),
        "distill": lambda: distiller.distill(plot.value, script.value),
    }
    clean = {"plot": plot, "script": script, "distill": thinking}
    assert all(r.usage.calls == 1 for r in clean.values())
    return ask, clean


CASES = [
    ("wrapped_answer", "script", WRAPPER_KEY),
    ("misspelt_keys", "script", "keys the schema does not have"),
    ("unknown_code", "script", UNKNOWN_CODE),
    ("times_outside", "script", "after the clip's end"),
    ("wrapped_answer", "plot", "segment_info"),  # a plot's required field is missing: the schema says so
    ("misspelt_keys", "plot", "narration"),
    ("unknown_code", "plot", UNKNOWN_CODE),
    ("times_outside", "plot", "main event 1 at"),
    ("unknown_code", "distill", UNKNOWN_CODE),
    ("oversized", "script", "output tokens, above the 32,768 asked for"),
]


@pytest.mark.parametrize(("kind", "stage", "quoted"), CASES, ids=[f"{k}@{s}" for k, s, _ in CASES])
def test_a_misshapen_answer_is_repaired_into_the_fault_free_one(sim, stages, caplog, kind, stage, quoted):
    server, glitches = sim
    ask, clean = stages
    glitches.play(f"{kind}@{stage}:1")
    before = server.request_count()
    with caplog.at_level(logging.INFO, logger="annotator.gateway.structured"):
        result = ask[stage]()
    assert result.ok, result.error
    assert result.value == clean[stage].value  # nothing of the misshapen answer survives
    assert (
        result.usage.calls == 2 and server.request_count() - before == 2
    )  # the fault-free call + one repair
    assert glitches.played() == [1]
    problems = [r.getMessage() for r in caplog.records if "failed validation" in r.getMessage()]
    assert len(problems) == 1 and quoted in problems[0], problems
    if (
        kind == "oversized"
    ):  # billed as the provider reported it, but never sent back as the next turn's input
        assert result.usage.output_tokens > 500_000
        assert result.usage.input_tokens < 2 * clean[stage].usage.input_tokens + 2_000


def test_a_contract_never_kept_fails_the_stage_as_invalid_output(sim, stages):
    """Repairs run out: the stage fails with the breach quoted (resume retries it), with no value to write."""
    _, glitches = sim
    ask, _ = stages
    glitches.play("unknown_code@plot")
    result = ask["plot"]()
    assert not result.ok and result.value is None
    assert result.outcome == "invalid_output" and UNKNOWN_CODE in result.error
    assert result.usage.calls == 2  # the first ask and settings_for's one repair turn


def test_answers_larger_than_the_output_asked_for_are_refused_before_parsing():
    """A short text that reports 503,586 output tokens against 32,768 asked for (issue 30's record), or a text
    of more bytes than those tokens could hold, is refused before it is parsed."""
    text = '{"meta": {}, "script": [{"scene_id": 1, "events": [{"timestamp": "00:01", "character": "Environment", "audio_cue": "rain"}]}]}'
    honest = ModelResponse(text=text, model="m", output_tokens=40)
    runaway = honest.model_copy(update={"output_tokens": 503_586})
    assert check_answer(honest, Script, max_output_tokens=32_768).value is not None
    refused = check_answer(runaway, Script, max_output_tokens=32_768)
    assert refused.value is None and refused.oversized and "503,586 output tokens" in refused.problem
    # a server that under-reports: the bytes alone are more than the tokens asked for can hold
    padded = honest.model_copy(update={"text": text[:-2] + ', "title": "' + "rain " * 120_000 + '"}]}'})
    refused = check_answer(padded, Script, max_output_tokens=32_768)
    assert refused.value is None and refused.oversized and "bytes, more than 32,768" in refused.problem


def test_codes_are_compared_in_one_spelling_and_matched_from_is_left_to_the_cpm():
    """ "CHAR_1" is char_001; an unknown `matched_from` is treated as new by the CPM (DESIGN §5), not a breach."""
    from annotator.schemas import NextSegmentPlot

    answer = {
        "segment_info": {"segment_index": 2},
        "characters": [{"id": "char_004", "name": "Ana", "matched_from": "char_777"}],
        "plot_summary": {"narrative": "CHAR_1 meets char_004."},
    }
    response = ModelResponse(text=json.dumps(answer), model="m")
    contract = AnswerContract(known_codes=frozenset({"char_001"}), clip_s=30.0)
    assert check_answer(response, NextSegmentPlot, contract).value is not None
    stranger = {**answer, "plot_summary": {"narrative": "char_002 meets char_004."}}
    refused = check_answer(
        response.model_copy(update={"text": json.dumps(stranger)}), NextSegmentPlot, contract
    )
    assert refused.value is None and "char_002" in refused.problem


def test_stored_scripts_with_extra_keys_still_read():
    """Only answers are held to their keys: records and stored results written by older versions still load."""
    stored = {
        "meta": {"title": "t", "legacy": 1},
        "script": [
            {
                "scene_id": 1,
                "old_field": "x",
                "events": [{"timestamp": 1.0, "character": "A", "action": "waves"}],
            }
        ],
    }
    assert Script.model_validate(stored).events()[0].action == "waves"
