"""An imperfect script writer: the simulator's answers drift from the screenplay the way real models do.

A perfect oracle would make every score 100 and prove nothing about the evaluation. With `rate` > 0 each event
is, with that probability and deterministically (seeded by the event itself, so reruns and caches agree):
late or early by 1–2 s, stripped of its expression, given a shortened action, or left out; and about one event
in 1/rate gains an invented reaction shot. Characters and dialogue text stay right: identity is the CPM's job.
"""

from __future__ import annotations

import hashlib
import random

from annotator.schemas.timecode import format_timestamp, parse_timestamp


def _rng(event: dict) -> random.Random:
    # keyed by what happens, not by the character's id: the id a script answer uses depends on how far the
    # memory has got when the script is asked (before or after a naming), which must not change the noise
    key = f"{event.get('timestamp')}|{event.get('dialogue')}|{event.get('action')}|{event.get('expression')}"
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))


def degrade_events(events: list[dict], rate: float, duration_s: float) -> list[dict]:
    if rate <= 0:
        return events
    out = []
    for event in events:
        rng = _rng(event)
        if rng.random() < rate / 4 and len(events) > 2:
            continue  # a missed beat
        body = dict(event)
        if rng.random() < rate:
            shifted = parse_timestamp(body["timestamp"]) + rng.choice([-2, -1, 1, 2])
            body["timestamp"] = format_timestamp(min(max(shifted, 0.0), duration_s))
        if body.get("expression") and (body.get("dialogue") or body.get("action")) and rng.random() < rate:
            del body["expression"]
        if body.get("action") and rng.random() < rate:
            words = body["action"].split()
            body["action"] = " ".join(words[: max(2, len(words) // 2)])
        out.append(body)
        if rng.random() < rate / 6 and body.get("character") not in (None, "Environment"):
            out.append(
                {"timestamp": body["timestamp"], "character": body["character"], "expression": "watchful"}
            )
    out.sort(key=lambda e: parse_timestamp(e["timestamp"]))
    return out
