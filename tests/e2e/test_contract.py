"""A job whose model answers break their contract now and then ends exactly like a fault-free one (issue 30).

The sample film's first two segments are run twice under one job id: once fault-free, once with the simulator
playing one-off misshapen answers (annotator/simulator/misshapen.py): plots naming a character code nobody gave,
with misspelt keys, with times an hour late, 2 MB long; every segment's script wrapped in a `response` key once,
one script also naming a stranger, one with times outside its clip; one distillation naming a stranger. Two
misbehaviours in a row fit the default two repair turns. Each is repaired,
so the faulty run writes the same records (same ids, the same bytes except the tokens and dollars they record
paying), loses and duplicates none, rejects none, and the simulator counts one extra call per misbehaviour.
"""

from __future__ import annotations

import json

import pytest

from annotator.simulator.scenarios import FaultRule, Scenario
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, run_job
from tests.support import e2e as checks
from tests.support.films import film_copy

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
JOB = "job-contract"  # one id for both runs: it is written into every record
SEGMENTS = 2
FILM_S = 112  # two 56 s segments of the sample film: the second plot is reasoned over the first one's memory
PAID = ("tokens", "cost_usd")  # what a record says its segment cost: repairs are paid for, honestly


def glitches() -> Scenario:
    """One-off misbehaviours, each stage of each segment misshapen twice at most (the earlier rule plays
    first, the next one on the repair turn)."""
    return Scenario(
        rules=[
            FaultRule(kind="unknown_code", stage="plot", segment=1, times=1),
            FaultRule(kind="misspelt_keys", stage="plot", segment=1, times=1),
            FaultRule(kind="times_outside", stage="plot", segment=2, times=1),
            FaultRule(kind="oversized", stage="plot", segment=2, times=1),
            FaultRule(kind="times_outside", stage="script", segment=1, times=1),
            FaultRule(kind="unknown_code", stage="script", segment=2, times=1),
            FaultRule(kind="wrapped_answer", stage="script", times=1, per_segment=True),
            FaultRule(kind="unknown_code", stage="distill", times=1),
        ]
    )


def _run(film, screenplay: Screenplay, out, behaviours=None):
    with (
        SimulatorServer(screenplay, behaviours=behaviours) as server,
        checks.models_from(server, "sim-contract"),
    ):
        _, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2), job_id=JOB)
        return summary, server.request_count()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    screenplay = Screenplay.load()  # the sample film's
    film = film_copy(screenplay, tmp_path_factory.mktemp("film") / "sample.mp4", until_s=FILM_S)
    clean_out, faulty_out = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("faulty")
    clean = _run(film, screenplay, clean_out)
    scenario = glitches()
    faulty = _run(film, screenplay, faulty_out, scenario)
    return {"clean": (clean_out, *clean), "faulty": (faulty_out, *faulty), "played": scenario.played()}


def _unpaid(record: dict, out) -> dict:
    """The record without what it says was paid, and with its output folder's name (in `proxy_uri`) left out."""
    record = json.loads(json.dumps(record).replace(str(out), "OUT"))
    return {**record, "meta": {k: v for k, v in record["meta"].items() if k not in PAID}}


def test_every_misbehaviour_was_played_and_repaired_with_nothing_failed_or_rejected(runs):
    assert runs["played"] == [1, 1, 1, 1, 1, 1, SEGMENTS, 1]
    for name in ("clean", "faulty"):
        out, summary, _ = runs[name]
        checks.check_every_segment_is_one_valid_record(out, summary, segments=SEGMENTS)
        checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)
        assert not (out / "rejects").exists(), name


def test_the_faulty_run_writes_the_fault_free_records(runs):
    clean, faulty = checks.records(runs["clean"][0]), checks.records(runs["faulty"][0])
    ids = [r["id"] for r in faulty]
    assert ids == [r["id"] for r in clean] and len(set(ids)) == SEGMENTS  # 0 lost, 0 duplicated
    clean_out, faulty_out = runs["clean"][0], runs["faulty"][0]
    for before, after in zip(clean, faulty, strict=True):
        assert _unpaid(after, faulty_out) == _unpaid(before, clean_out)
    for before, after in zip(clean, faulty, strict=True):  # the repairs were paid, and say so
        assert after["meta"]["tokens"]["output"] >= before["meta"]["tokens"]["output"]
    text = "\n".join(json.dumps(r) for r in faulty)
    assert "char_999" not in text and "notes" not in text


def test_model_calls_are_the_fault_free_count_plus_one_repair_per_misbehaviour(runs):
    assert runs["faulty"][2] == runs["clean"][2] + sum(runs["played"])
