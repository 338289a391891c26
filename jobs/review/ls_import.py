"""Label Studio annotations back into corrections: one corrected segment per annotated task (pure).

Each task's newest submitted (not cancelled) annotation is read against its record, whose regions are
computed again exactly as the export made them (jobs/review/ls_regions.py): a region whose frames did not
move keeps the record's own seconds (frames are coarser than the model's timestamps), a moved or new one
gets the seconds of its frames, a missing one was deleted. A field a reviewer emptied has no result at all.
Character corrections: a region's character choice re-attributes that event; editing its character name
renames the chosen character (through the CPM); the task's cast lines rename, merge and split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from annotator.schemas import CharacterProfile, Record
from jobs.review.frames import frame_end_s, frame_start_s
from jobs.review.ls_format import (
    CAST,
    CHARACTER,
    CHARACTER_NAME,
    ENVIRONMENT,
    EVENT,
    EVENT_FIELDS,
    KIND,
    SCENE,
    SCENE_FIELDS,
    Annotation,
    Task,
    code_of_choice,
    texts,
)
from jobs.review.ls_regions import Planned, Resolver, plan_regions
from profiles_db.ground_truth import Change, GtEventIn, GtSceneIn, GtSegmentIn


class CastCorrection(BaseModel):
    scope: str
    op: Literal["rename", "merge", "split"]
    code: str
    target: str | None = None  # rename: the new name; merge: the code it goes into
    reviewer: str
    where: str  # task (and region) it came from, for the evidence and for errors


class Review(BaseModel):
    segments: list[GtSegmentIn]
    cast: list[CastCorrection]
    unreviewed: list[str]  # tasks without a submitted annotation


@dataclass
class _Region:
    region_id: str
    kind: str | None = None
    frames: tuple[int, int] | None = None
    texts: dict[str, str] = field(default_factory=dict)
    choice: str | None = None


def convert(
    tasks: list[Task],
    records: dict[str, Record],
    resolvers: dict[str, Resolver],
    source: str,
    reviewer_of: dict[int, str],
) -> Review:
    """Corrections from Label Studio tasks (its JSON export); `records` by id, `resolvers` by scope,
    `reviewer_of` a user id → name for annotations that only carry an id."""
    review = Review(segments=[], cast=[], unreviewed=[])
    for task in tasks:
        where = f"{source} task {task.id}"
        record = _record_of(task, records, where)
        annotation = latest(task)
        if annotation is None:
            review.unreviewed.append(where)
            continue
        scope = str(task.data.get("v2s_scope") or record.video.series or record.video.video_id)
        resolve = resolvers.get(scope) or (lambda _code: None)
        reviewer = reviewer_name(annotation, reviewer_of)
        segment, renames = convert_task(task, annotation, record, resolve, reviewer, where)
        review.segments.append(segment)
        review.cast += [CastCorrection(scope=scope, reviewer=reviewer, **r) for r in renames]
        review.cast += cast_lines(_cast_text(annotation), scope, reviewer, where)
    review.cast = _once(review.cast)
    return review


def _once(cast: list[CastCorrection]) -> list[CastCorrection]:
    """Each correction once (a rename typed on several events of one character is one rename)."""
    seen: set[tuple[str, str, str, str | None]] = set()
    kept = []
    for c in cast:
        key = (c.scope, c.op, c.code, c.target)
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


def _record_of(task: Task, records: dict[str, Record], where: str) -> Record:
    record_id = task.data.get("v2s_record")
    if not record_id:
        raise ValueError(
            f"{where}: no v2s_record in its data: not a task `v2s review export-labelstudio` wrote"
        )
    record = records.get(str(record_id))
    if record is None:
        raise ValueError(f"{where}: unknown segment: record {record_id} is not in this run's shards")
    return record


def latest(task: Task) -> Annotation | None:
    """The newest submitted annotation of a task (cancelled ones, i.e. skips, do not count)."""
    done = [a for a in task.annotations if not a.was_cancelled]
    return max(done, key=lambda a: (a.updated_at or a.created_at or "", a.id or 0), default=None)


def reviewer_name(annotation: Annotation, reviewer_of: dict[int, str]) -> str:
    who = annotation.completed_by
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or f"label-studio user {who.get('id')}")
    if isinstance(who, int):
        return reviewer_of.get(who, f"label-studio user {who}")
    return "label-studio (unknown reviewer)"


def reviewed_at(annotation: Annotation) -> datetime:
    stamp = annotation.updated_at or annotation.created_at
    if not stamp:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def convert_task(
    task: Task, annotation: Annotation, record: Record, resolve: Resolver, reviewer: str, where: str
) -> tuple[GtSegmentIn, list[dict]]:
    """One task's corrected segment and the renames its character-name edits ask for."""
    fps, offset = _number(task, "fps", where), _number(task, "v2s_offset_s", where)
    planned = {p.region_id: p for p in plan_regions(record, offset, fps, shown_resolver(task, resolve))}
    regions = _regions(annotation, where)
    changes = [
        Change(region=rid, field="region", old="present", new=None) for rid in planned if rid not in regions
    ]
    scenes, spans = _scenes(regions, planned, record, offset, fps, changes)
    renames: list[dict] = []
    for region in sorted((r for r in regions.values() if r.kind == EVENT), key=lambda r: r.frames or (0, 0)):
        plan = planned.get(region.region_id)
        event = _event(region, plan, record, offset, fps, resolve, changes)
        renames += _rename(region, plan, event, resolve, where)
        _scene_for(scenes, spans, region, event.timestamp_s).events.append(event)
    for scene in scenes:
        scene.events.sort(key=lambda e: e.timestamp_s)
    segment = GtSegmentIn(
        video_id=record.video.video_id,
        segment_index=record.video.segment_index,
        record_id=record.id,
        reviewer=reviewer,
        reviewed_at=reviewed_at(annotation),
        source_ref=f"{where} annotation {annotation.id}",
        changes=changes,
        scenes=scenes,
    )
    return segment, renames


def shown_resolver(task: Task, resolve: Resolver) -> Resolver:
    """The characters as the task showed them (its `v2s_shown`: record code → [code, name]), so that the
    regions are planned exactly as exported; codes it does not list go to the CPM."""
    shown = task.data.get("v2s_shown") or {}

    def lookup(code: str) -> CharacterProfile | None:
        if code in shown and isinstance(shown[code], list) and len(shown[code]) == 2:
            canonical, name = shown[code]
            return CharacterProfile(id=str(canonical), name=str(name), status="named")
        return resolve(code)

    return lookup


def _number(task: Task, key: str, where: str) -> float:
    try:
        return float(task.data[key])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: data.{key} is missing or not a number") from None


def _regions(annotation: Annotation, where: str) -> dict[str, _Region]:
    regions: dict[str, _Region] = {}
    for result in annotation.result:
        if result.from_name == CAST or not result.id:
            continue
        region = regions.setdefault(result.id, _Region(result.id))
        if result.value.ranges:
            ranges = result.value.ranges
            region.frames = (min(r.start for r in ranges), max(r.end for r in ranges))
        if result.from_name == KIND and result.value.timelinelabels:
            region.kind = result.value.timelinelabels[0]
        elif result.from_name == CHARACTER and result.value.choices:
            region.choice = result.value.choices[0]
        elif result.type == "textarea":
            region.texts[result.from_name] = texts(result.value)
    for region in regions.values():
        if region.kind not in (SCENE, EVENT) or region.frames is None:
            raise ValueError(
                f"{where}: region {region.region_id} is neither a Scene nor an Event on the timeline"
            )
    return regions


def _span(region: _Region, plan: Planned | None, offset: float, fps: float, changes: list[Change]):
    """(start, end, moved) in absolute seconds: the record's own when the frames did not move."""
    assert region.frames is not None
    if plan is not None and plan.frames == region.frames:
        return plan.start_s, plan.end_s, False
    start = round(offset + frame_start_s(region.frames[0], fps), 3)
    end = round(offset + frame_end_s(region.frames[1], fps), 3)
    if plan is None:
        changes.append(Change(region=region.region_id, field="region", old=None, new="added"))
    else:
        for name, old, new in (("start_s", plan.start_s, start), ("end_s", plan.end_s, end)):
            if plan.frames[0 if name == "start_s" else 1] != region.frames[0 if name == "start_s" else 1]:
                changes.append(Change(region=region.region_id, field=name, old=old, new=new))
    return start, end, True


def _fields(region: _Region, plan: Planned | None, names: tuple[str, ...], changes: list[Change]):
    values = {name: region.texts.get(name) or None for name in names}
    for name, new in values.items():
        old = plan.fields.get(name) if plan is not None else None
        if (old or None) != new and plan is not None:
            changes.append(Change(region=region.region_id, field=name, old=old, new=new))
    return values


Spans = dict[str, tuple[float, float]]


def _scenes(
    regions, planned, record: Record, offset: float, fps: float, changes
) -> tuple[list[GtSceneIn], Spans]:
    """The corrected scenes in time order, and each one's span in seconds (to place the events in)."""
    scenes, spans = [], {}
    originals = record.script.script
    for region in (r for r in regions.values() if r.kind == SCENE):
        plan = planned.get(region.region_id)
        start, end, moved = _span(region, plan, offset, fps, changes)
        spans[region.region_id] = (start, end)
        original = originals[plan.scene - 1] if plan is not None else None
        if original is not None and not moved:  # keep what the record said (an open end stays open)
            start, end = original.start_timestamp, original.end_timestamp
        scenes.append(
            GtSceneIn(
                region_id=region.region_id,
                scene_id=original.scene_id if original is not None else 0,
                start_s=start,
                end_s=end,
                **{k: v or "" for k, v in _fields(region, plan, SCENE_FIELDS, changes).items()},
            )
        )
    scenes.sort(key=lambda s: spans[s.region_id])
    if not scenes:  # every scene deleted: the events still need one
        scenes.append(GtSceneIn(region_id="sc0", scene_id=1, start_s=record.video.start_s))
        spans["sc0"] = (record.video.start_s, record.video.end_s)
    used = {s.scene_id for s in scenes}
    for scene in scenes:
        if scene.scene_id == 0:
            scene.scene_id = max(used) + 1
            used.add(scene.scene_id)
    return scenes, spans


def _event(region, plan, record: Record, offset, fps, resolve: Resolver, changes) -> GtEventIn:
    start, end, moved = _span(region, plan, offset, fps, changes)
    original = record.script.script[plan.scene - 1].events[plan.event - 1] if plan is not None else None
    end_s = original.end_timestamp if original is not None and not moved else end
    code, name = _character(region, plan, resolve)
    if plan is not None and code != plan.code:
        changes.append(Change(region=region.region_id, field="character", old=plan.code, new=code))
    return GtEventIn(
        region_id=region.region_id,
        timestamp_s=start,
        end_s=end_s,
        character=name,
        character_code=code,
        voice_type=original.voice_type if original is not None else None,
        **_fields(region, plan, EVENT_FIELDS, changes),
    )


def _character(region: _Region, plan: Planned | None, resolve: Resolver) -> tuple[str | None, str]:
    """(code, name) the event is attributed to: the chosen character, else what the record said."""
    if region.choice == ENVIRONMENT:
        return None, ENVIRONMENT
    code = code_of_choice(region.choice) if region.choice else None
    if code is None and plan is not None and region.choice is None:
        return plan.code, plan.name
    profile = resolve(code) if code else None
    typed = region.texts.get(CHARACTER_NAME, "")
    return code, (profile.display_name if profile is not None else typed or (code or ""))


def _rename(
    region: _Region, plan: Planned | None, event: GtEventIn, resolve: Resolver, where: str
) -> list[dict]:
    """A rename when the region's character name was edited: it differs from what the task showed and from
    the chosen character's name. The event then carries the new name."""
    typed = region.texts.get(CHARACTER_NAME, "").strip()
    code = event.character_code
    if not typed or code is None:
        return []
    shown = plan.name if plan is not None else None
    profile = resolve(code)
    current = profile.display_name if profile is not None else None
    if typed in (shown, current):
        return []
    event.character = typed
    return [{"op": "rename", "code": code, "target": typed, "where": f"{where} region {region.region_id}"}]


def _scene_for(scenes: list[GtSceneIn], spans: Spans, region: _Region, start: float) -> GtSceneIn:
    """The event's scene: the one it came from while it still holds it, else the one it starts in, else the
    last one starting before it."""
    home = re.match(r"^(sc\d+)e\d+$", region.region_id)
    by_id = {s.region_id: s for s in scenes}

    def holds(scene: GtSceneIn) -> bool:
        first, last = spans[scene.region_id]
        return first <= start < last or first == last == start

    if home and home.group(1) in by_id and holds(by_id[home.group(1)]):
        return by_id[home.group(1)]
    holding = [s for s in scenes if holds(s)]
    if holding:
        return holding[0]
    before = [s for s in scenes if spans[s.region_id][0] <= start]
    return before[-1] if before else scenes[0]


def _cast_text(annotation: Annotation) -> str:
    return "\n".join(texts(r.value) for r in annotation.result if r.from_name == CAST)


_RENAME = re.compile(r"^rename\s+(\S+?)\s*[:=]\s*(.+)$", re.I)
_MERGE = re.compile(r"^merge\s+(\S+)\s+into\s+(\S+)$", re.I)
_SPLIT = re.compile(r"^(?:split|unmerge)\s+(\S+)$", re.I)


def cast_lines(text: str, scope: str, reviewer: str, where: str) -> list[CastCorrection]:
    """The task's cast corrections, one a line: `rename CODE: NAME`, `merge CODE into CODE`, `split CODE`."""
    found = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        at = f"{where} cast line {n}"
        if m := _RENAME.match(line):
            found.append(
                CastCorrection(
                    scope=scope, op="rename", code=m[1], target=m[2].strip(), reviewer=reviewer, where=at
                )
            )
        elif m := _MERGE.match(line):
            found.append(
                CastCorrection(scope=scope, op="merge", code=m[1], target=m[2], reviewer=reviewer, where=at)
            )
        elif m := _SPLIT.match(line):
            found.append(CastCorrection(scope=scope, op="split", code=m[1], reviewer=reviewer, where=at))
        else:
            raise ValueError(
                f"{at}: {line!r} is not a cast correction (rename CODE: NAME · merge CODE into CODE · split CODE)"
            )
    return found
