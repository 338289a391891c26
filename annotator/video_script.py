"""Merge the records of one video into its whole script (annotator/schemas/video_script.py).

Segments are cut at shot changes, but a scene may still run across a cut: the last scene of one record and the
first of the next are one scene when they are at the same place (location, interior/exterior, time of day)
with people in common, or when the next record's first scene names no place of its own. A line or action told
at the end of one record and again at the start of the next (the models see a little on both sides of a cut)
is kept once: the same speaker, the same words, within a few seconds.
"""

from __future__ import annotations

import re

from annotator.records import INSTRUCTION, without_placeholders
from annotator.schemas.record import Message, Record, RecordCharacter
from annotator.schemas.script import ENVIRONMENT, Scene, Script, ScriptEvent, ScriptMeta
from annotator.schemas.video_script import SegmentGap, StorylineStep, VideoScript, VideoSource

REPEAT_WINDOW_S = 5.0  # how far apart the two tellings of one event may be, across a cut
GAP_TOLERANCE_S = 0.5  # records closer than this are contiguous
_WORDS = re.compile(r"\w+")

WHOLE_INSTRUCTION = INSTRUCTION.replace("Watch this clip", "Watch this whole video", 1)


def _norm(text: str | None) -> str:
    return " ".join(_WORDS.findall((text or "").lower()))


def _people(scene: Scene) -> set[str]:
    return {e.character_id or e.character for e in scene.events if e.character != ENVIRONMENT}


def same_scene(before: Scene, after: Scene) -> bool:
    """Whether `after` (the first scene of a record) goes on with `before` (the last of the previous one)."""
    if not _norm(after.location):
        return True  # nothing says the place changed
    place = all(_norm(getattr(before, f)) == _norm(getattr(after, f)) for f in ("location", "type", "time"))
    people_before, people_after = _people(before), _people(after)
    shared = not people_before or not people_after or bool(people_before & people_after)
    return place and shared


def _telling(event: ScriptEvent) -> tuple[str, str, str]:
    return (event.character_id or event.character, _norm(event.dialogue), _norm(event.action))


def _repeats(tail: list[ScriptEvent], event: ScriptEvent) -> bool:
    told = _telling(event)
    if not (told[1] or told[2]):
        return False
    return any(_telling(e) == told and abs(e.timestamp - event.timestamp) <= REPEAT_WINDOW_S for e in tail)


def merge_video(records: list[Record]) -> VideoScript:
    """The whole script of one video from its records (any order; one video's only)."""
    if not records:
        raise ValueError("no records to merge")
    ordered = sorted(records, key=lambda r: r.video.start_s)
    if len({r.video.video_id for r in ordered}) != 1:
        raise ValueError("records of several videos: merge one video at a time")
    scenes: list[Scene] = []
    joined = dropped = 0
    gaps: list[SegmentGap] = []
    for n, record in enumerate(ordered):
        if n and record.video.start_s - ordered[n - 1].video.end_s > GAP_TOLERANCE_S:
            gaps.append(SegmentGap(start_s=ordered[n - 1].video.end_s, end_s=record.video.start_s))
        for k, scene in enumerate(record.script.script):
            scene = scene.model_copy(deep=True)
            previous = scenes[-1] if scenes else None
            continues = k == 0 and previous is not None and not _gap_before(gaps, record)
            if continues and same_scene(previous, scene):
                tail = [e for e in previous.events if e.timestamp >= record.video.start_s - REPEAT_WINDOW_S]
                kept = [e for e in scene.events if not _repeats(tail, e)]
                dropped += len(scene.events) - len(kept)
                previous.events.extend(kept)
                previous.end_timestamp = _latest(previous.end_timestamp, scene.end_timestamp)
                joined += 1
                continue
            scenes.append(scene)
    for number, scene in enumerate(scenes, start=1):
        scene.scene_id = number
    characters = _cast(ordered)
    first, last = ordered[0].video, ordered[-1].video
    script = Script(
        meta=ScriptMeta(
            title=ordered[0].script.meta.title,
            duration=_clock(last.end_s - first.start_s),
            characters=[c.code for c in characters],
        ),
        script=scenes,
        high_points=[p for r in ordered for p in r.script.high_points],
    )
    return VideoScript(
        id=first.video_id,
        video=VideoSource(
            uri=first.uri,
            video_id=first.video_id,
            series=first.series,
            episode=first.episode,
            start_s=first.start_s,
            end_s=last.end_s,
        ),
        messages=[
            Message(role="user", content=WHOLE_INSTRUCTION),
            Message(
                role="assistant", content=without_placeholders(script.model_dump_json(exclude_none=True))
            ),
        ],
        script=script,
        storyline=[
            StorylineStep(
                segment_index=r.video.segment_index,
                start_s=r.video.start_s,
                end_s=r.video.end_s,
                summary=r.plot.summary or r.plot.narrative,
                continuity_note=r.plot.continuity_note,
            )
            for r in ordered
        ],
        characters=characters,
        segments=[r.id for r in ordered],
        gaps=gaps,
        joined_scenes=joined,
        dropped_repeats=dropped,
    )


def _gap_before(gaps: list[SegmentGap], record: Record) -> bool:
    """A hole in the records just before `record`: the scene before it cannot be said to go on."""
    return bool(gaps) and abs(gaps[-1].end_s - record.video.start_s) < 1e-6


def _latest(a: float | None, b: float | None) -> float | None:
    return max(t for t in (a, b) if t is not None) if a is not None or b is not None else None


def _cast(records: list[Record]) -> list[RecordCharacter]:
    """Every character of the video once, as its latest record names it (names are final at export)."""
    cast: dict[str, RecordCharacter] = {}
    for record in records:
        for character in record.characters:
            cast[character.code] = character
    return [cast[code] for code in sorted(cast)]


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def merge_videos(records: list[Record]) -> list[VideoScript]:
    """One whole script per video, in video id order."""
    by_video: dict[str, list[Record]] = {}
    for record in records:
        by_video.setdefault(record.video.video_id, []).append(record)
    return [merge_video(by_video[video_id]) for video_id in sorted(by_video)]
