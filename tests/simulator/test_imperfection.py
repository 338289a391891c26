"""The simulator's imperfect-model mode: deterministic drift that the V2S metrics must see."""

from __future__ import annotations

from annotator.schemas import Script
from annotator.simulator.imperfection import degrade_events
from annotator.simulator.screenplay import Screenplay
from evaluation import evaluate


def _events():
    return [
        {
            "timestamp": f"00:{s:02d}",
            "character": "char_001",
            "dialogue": f"line {s}",
            "action": "walks to the door slowly",
            "expression": "tired",
        }
        for s in range(0, 60, 3)
    ]


def test_rate_zero_is_exact_and_drift_is_deterministic():
    events = _events()
    assert degrade_events(events, 0.0, 60) == events
    first, second = degrade_events(events, 0.4, 60), degrade_events(events, 0.4, 60)
    assert first == second != events
    kept_lines = {e.get("dialogue") for e in first} - {None}
    assert kept_lines <= {e["dialogue"] for e in events}  # dialogue text is never invented or altered


def test_drift_lowers_the_scores_but_not_to_zero():
    screenplay = Screenplay.load()
    truth = screenplay.script.model_dump(mode="json")
    drifted = screenplay.script.model_dump(mode="json")
    for scene in drifted["script"]:
        for event in scene["events"]:
            event["timestamp"] = f"{int(event['timestamp']) // 60:02d}:{int(event['timestamp']) % 60:02d}"
        scene["events"] = degrade_events(scene["events"], 0.3, screenplay.duration_s)
    Script.model_validate(drifted)
    exact = evaluate(truth, truth).to_dict()
    noisy = evaluate(truth, drifted).to_dict()
    exact_f1 = exact["events"]["overall"]["f1"]
    noisy_f1 = noisy["events"]["overall"]["f1"]
    assert exact_f1 == 1.0
    assert 0.5 < noisy_f1 < 1.0
