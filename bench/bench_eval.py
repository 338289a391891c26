"""Benchmark of the V2S metrics (figures only, no assertions).

1. A 70-event, 7-scene ground truth against a perturbed prediction (time jitter, reworded text, dropped,
   split and extra events, renamed characters): the time of one full non-LLM evaluation (target < 100 ms).
2. Stage-1 alignment at 100/200/400/800 events (about 14 events per minute, as in the paper's benchmark):
   time, candidate count and the growth ratio per doubling (≈ 2 means linear).

Run: python bench/bench_eval.py
"""

from __future__ import annotations

import random
import statistics
import time

from evaluation import evaluate
from evaluation.alignment import AlignSettings, align
from evaluation.judges import LexicalJudge
from evaluation.schema import Script, script_units

CHARACTERS = ["Anna", "Ben", "police officer", "the driver", "Mrs. Lee", "Environment"]
VERBS = ["opens", "closes", "looks at", "walks to", "picks up", "drops", "points at", "leans on", "runs to"]
OBJECTS = ["the door", "the window", "a letter", "the car", "her phone", "the table", "the gun", "a cup"]
LINES = [
    "Where were you last night?",
    "I told you, I was at home.",
    "That's not what the neighbours say.",
    "Leave me alone.",
    "We need to talk about the money.",
    "Nobody followed me, I promise.",
    "",
    "",
]
MOODS = ["tense", "calm", "melancholic", "joyful", "ominous"]


def make_gt(n_events: int, n_scenes: int, rng: random.Random, gap_s: float = 4.3) -> dict:
    scenes = []
    per_scene = n_events // n_scenes
    t = 0.0
    for s in range(n_scenes):
        events = []
        start = t
        for _ in range(per_scene if s < n_scenes - 1 else n_events - per_scene * (n_scenes - 1)):
            events.append(
                {
                    "timestamp": round(t, 1),
                    "character": rng.choice(CHARACTERS),
                    "dialogue": rng.choice(LINES),
                    "action": f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}",
                    "expression": rng.choice(["angry", "smiling", "worried", "", ""]),
                    "audio_cue": rng.choice(["footsteps", "rain on the roof", "", "", ""]),
                }
            )
            t += rng.uniform(0.5, 2 * gap_s - 0.5)
        scenes.append(
            {
                "scene_id": s + 1,
                "location": f"{rng.choice(['kitchen', 'street', 'office', 'car park'])} {s}",
                "type": rng.choice(["INT", "EXT"]),
                "environment": rng.choice(["dim light", "bright daylight", "heavy rain"]),
                "time": rng.choice(["day", "night"]),
                "mood": rng.choice(MOODS),
                "start_timestamp": round(start, 1),
                "events": events,
            }
        )
    return {"meta": {"title": "bench"}, "script": scenes, "duration_s": round(t + 5, 1)}


def perturb(gt: dict, rng: random.Random) -> dict:
    rename = {"police officer": "cop", "the driver": "driver", "Mrs. Lee": "Mrs Lee"}
    scenes = []
    for scene in gt["script"]:
        events = []
        for e in scene["events"]:
            r = rng.random()
            if r < 0.08:  # dropped
                continue
            e = dict(e, timestamp=max(0.0, e["timestamp"] + rng.uniform(-2, 2)))
            e["character"] = rename.get(e["character"], e["character"])
            if rng.random() < 0.3:
                e["action"] = e["action"].replace("the ", "a ")
            if rng.random() < 0.2 and e["dialogue"]:
                e["dialogue"] = e["dialogue"].lower().rstrip("?.!")
            events.append(e)
            if r > 0.93:  # split into two
                events.append(dict(e, timestamp=e["timestamp"] + 1.0, dialogue="", action="and turns away"))
            if 0.90 < r <= 0.93:  # an extra, hallucinated event
                events.append(dict(e, timestamp=e["timestamp"] + 0.5, action="sneezes", dialogue="Bless you"))
        events.sort(key=lambda x: x["timestamp"])
        scenes.append(dict(scene, events=events, mood=rng.choice(MOODS)))
    return dict(gt, script=scenes)


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return min(samples), statistics.median(samples)


def main() -> None:
    rng = random.Random(7)
    gt = make_gt(70, 7, rng)
    pred = perturb(gt, rng)
    judge = LexicalJudge()
    result = evaluate(gt, pred, judge=judge)  # warm-up (imports, caches)
    best, median = timed(lambda: evaluate(gt, pred, judge=judge), repeat=15)
    n_pred = sum(len(s["events"]) for s in pred["script"])
    print(f"70-event / 7-scene pair ({n_pred} predicted events), lexical judge, full evaluation:")
    print(f"  min {best * 1000:.1f} ms, median {median * 1000:.1f} ms (target < 100 ms)")
    ov, t1 = result.events.overall()["f1"] or 0.0, result.events.tiou(0.1) or 0.0
    print(f"  event Overall F1 {100 * ov:.1f}, tIoU@0.1 {100 * t1:.1f}, groups {result.events.groups}")
    print(f"  scene Overall F1 {100 * (result.scenes.overall()['f1'] or 0.0):.1f}")

    print("\nStage-1 alignment (group size 3):")
    print(f"  {'events':>7} {'candidates':>11} {'ms':>9} {'time ratio':>11} {'cand. ratio':>12}")
    previous: tuple[float, int] | None = None
    settings = AlignSettings(group_size=3)
    for n in (100, 200, 400, 800):
        g = make_gt(n, max(1, n // 10), random.Random(n))
        p = perturb(g, random.Random(n + 1))
        gu = script_units(Script.model_validate(g)).events
        pu = script_units(Script.model_validate(p)).events
        best, _ = timed(lambda gu=gu, pu=pu: align(gu, pu, settings), repeat=3)
        cands = align(gu, pu, settings).candidates
        ratio = f"{best / previous[0]:.2f}" if previous else "–"
        cratio = f"{cands / previous[1]:.2f}" if previous else "–"
        print(f"  {n:>7} {cands:>11} {best * 1000:>9.1f} {ratio:>11} {cratio:>12}")
        previous = (best, cands)


if __name__ == "__main__":
    main()
