"""A record's scenes and events as timeline regions: ids, spans and field values (pure).

The export writes these as a task's prediction; the import computes them again from the same record to see
what the reviewer changed. Spans follow the evaluation's rules (docs/evaluation.md "Spans"): an event ends at
its `end_timestamp`, else at the next strictly later event of its scene, else where its scene ends; a scene
starts at its `start_timestamp`, else its first event, else where the previous one ended, and ends at its
`end_timestamp`, else at the next scene's start, else at the segment's end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from annotator.schemas import CharacterProfile, Record
from annotator.schemas.script import Scene, ScriptEvent
from jobs.review.frames import span_to_frames
from jobs.review.ls_format import ENVIRONMENT, EVENT, EVENT_FIELDS, SCENE, SCENE_FIELDS

Resolver = Callable[[str], CharacterProfile | None]


@dataclass
class Planned:
    """One region as exported: absolute seconds (what the record says) and its frames on the proxy."""

    region_id: str
    kind: str  # Scene | Event
    start_s: float
    end_s: float
    frames: tuple[int, int]
    fields: dict[str, str] = field(default_factory=dict)  # non-empty field texts
    scene: int = 0  # 1-based position of the scene (of its scene, for an event)
    event: int = 0  # 1-based position in its scene (events only)
    code: str | None = None  # the canonical CPM code (events only)
    name: str = ""  # the character's name as shown (events only)


def scene_region(k: int) -> str:
    return f"sc{k}"


def event_region(k: int, j: int) -> str:
    return f"sc{k}e{j}"


def plan_regions(record: Record, offset_s: float, fps: float, resolve: Resolver) -> list[Planned]:
    """Every scene and event of `record` as a region, scenes first; `offset_s` is subtracted from absolute
    times to get proxy times, `resolve` gives the current canonical profile of a code (names change after
    export: the task shows the CPM's name of today)."""
    scenes = record.script.script
    spans = _scene_spans(scenes, record.video.start_s, record.video.end_s)
    planned: list[Planned] = []
    for k, (scene, (start, end)) in enumerate(zip(scenes, spans, strict=True), start=1):
        fields = {f: getattr(scene, f) for f in SCENE_FIELDS if getattr(scene, f)}
        frames = span_to_frames(start - offset_s, end - offset_s, fps)
        planned.append(Planned(scene_region(k), SCENE, start, end, frames, fields, scene=k))
    for k, (scene, (_, scene_end)) in enumerate(zip(scenes, spans, strict=True), start=1):
        for j, (event, end) in enumerate(_event_spans(scene.events, scene_end), start=1):
            planned.append(_event(k, j, event, end, offset_s, fps, resolve))
    return planned


def _event(
    k: int, j: int, event: ScriptEvent, end: float, offset_s: float, fps: float, resolve: Resolver
) -> Planned:
    fields = {f: getattr(event, f) for f in EVENT_FIELDS if getattr(event, f)}
    profile = resolve(event.character_id) if event.character_id else None
    code = profile.id if profile is not None else event.character_id
    name = profile.display_name if profile is not None else event.character
    frames = span_to_frames(event.timestamp - offset_s, end - offset_s, fps)
    return Planned(
        event_region(k, j), EVENT, event.timestamp, end, frames, fields, k, j, code, name or ENVIRONMENT
    )


def _scene_spans(scenes: list[Scene], seg_start: float, seg_end: float) -> list[tuple[float, float]]:
    starts = [
        s.start_timestamp
        if s.start_timestamp is not None
        else min((e.timestamp for e in s.events), default=None)
        for s in scenes
    ]
    spans: list[tuple[float, float]] = []
    previous = seg_start
    for k, scene in enumerate(scenes):
        start = starts[k] if starts[k] is not None else previous
        following = next((s for s in starts[k + 1 :] if s is not None), None)
        end = scene.end_timestamp
        if end is None:
            end = following if following is not None else max(seg_end, start)
        spans.append((start, max(end, start)))
        previous = spans[-1][1]
    return spans


def _event_spans(events: list[ScriptEvent], scene_end: float) -> list[tuple[ScriptEvent, float]]:
    times = [e.timestamp for e in events]
    out = []
    for event in events:
        if event.end_timestamp is not None:
            end = event.end_timestamp
        else:
            later = [t for t in times if t > event.timestamp]
            end = min(later) if later else max(scene_end, event.timestamp)
        out.append((event, max(end, event.timestamp)))
    return out
