"""Assemble the output record of one segment (DESIGN.md §7), resolving character codes to current names."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

from pydantic import BaseModel

from annotator import ENGINE_VERSION
from annotator.schemas import (
    CharacterProfile,
    DistilledThinking,
    PlotReasoning,
    Record,
    Script,
    format_timestamp,
)
from annotator.schemas.plot import CODE_PATTERN, code_key, replace_codes
from annotator.schemas.record import (
    KeyValue,
    MemoryGap,
    Message,
    RecordCharacter,
    RecordMeta,
    RecordPlot,
    RecordTokens,
    RecordVideo,
)
from annotator.schemas.usage import StageUsage

INSTRUCTION = (
    "<video>\nWatch this clip and write its script: scenes (location, interior/exterior, setting, time, mood) and, "
    "in time order, every event with its timestamp (MM:SS), character, dialogue, action, expression and audio cue. "
    "Think about the characters and the plot first."
)

THINK_TAG = (
    "think"  # the tag around the reasoning in a record's assistant turn (`v2s export --think-tag` swaps it)
)

Resolver = Callable[[str], CharacterProfile | None]


class UnresolvedCodes(ValueError):
    """A segment whose plot, script or thinking names a character code that no profile of the memory answers to
    (after redirects). Its record is not built: a code that means nobody would teach a model to invent them. The
    gateway's contract keeps such codes out of fresh answers; this is the last line, e.g. for stored ones."""

    def __init__(self, codes: set[str]) -> None:
        super().__init__(
            f"character codes no profile answers to: {', '.join(sorted(codes))}; the record is not written"
        )
        self.codes = frozenset(codes)


def record_id(video_id: str, start_s: float, end_s: float, pipeline_version: str) -> str:
    """Deterministic: the same segment under the same pipeline (prompts + models) always gets the same id."""
    key = f"{video_id}|{start_s:.3f}|{end_s:.3f}|{pipeline_version}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def tagged(thinking: str, tag: str = THINK_TAG) -> str:
    """The reasoning as the assistant turn starts with it: Qwen3's (and LLaMA-Factory's reasoning templates')
    `<think>\n…\n</think>\n\n`, so a trainer set not to think (`enable_thinking: false`) strips it whole."""
    return f"<{tag}>\n{thinking}\n</{tag}>\n\n"


# The media placeholders of the trainers' chat templates (LLaMA-Factory's mm_plugin, ms-swift, Qwen-VL): they
# count them in every turn against the row's media list, so one spoken "<video>" in a line of dialogue fails the
# whole dataset. In a model's text they are written with single angle quotes instead.
MEDIA_PLACEHOLDERS = {"<video>": "‹video›", "<image>": "‹image›", "<audio>": "‹audio›"}


def without_placeholders(text: str) -> str:
    for token, shown in MEDIA_PLACEHOLDERS.items():
        text = text.replace(token, shown)
    return text


def assistant_turn(thinking: str, clip_script: Script) -> str:
    """The SFT target: the reasoning in its tag, then the script as the model should write it (clip-relative);
    no media placeholder in it (the user turn's `<video>` is the row's only one)."""
    return without_placeholders(f"{tagged(thinking)}{_clip_json(clip_script)}")


DESCRIPTOR_WORDS = 6  # "weathered man in his sixties": who they are at a glance, not the whole description


def descriptor(profile: CharacterProfile) -> str | None:
    """How a record calls a character its scope never named: by what they look like, as the paper's ground
    truth does ("old man", "security guard"), not by a code a trained model would learn to say. Taken from
    the first appearance the memory noted (it stays the same when later ones are added)."""
    first = (profile.appearance_history[:1] or [profile.appearance])[0]
    clause = re.split(r"[,;.(]", first or "", maxsplit=1)[0].split()
    if not clause:
        return None
    words = clause[:DESCRIPTOR_WORDS]
    return " ".join([words[0].lower(), *words[1:]])


class Labels:
    """What one record calls each character: the name, else a descriptor (numbered when two unnamed people
    look alike), else the code."""

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, profile: CharacterProfile) -> str:
        if profile.id not in self._by_id:
            label = profile.name or descriptor(profile) or profile.id
            if not profile.name:
                n, base = 2, label
                while label in self._taken:
                    label, n = f"{base} {n}", n + 1
            self._taken.add(label)
            self._by_id[profile.id] = label
        return self._by_id[profile.id]


def build_record(
    *,
    job_id: str,
    pipeline_version: str,
    video: RecordVideo,
    plot: PlotReasoning,
    code_map: dict[str, str],
    script: Script,
    thinking: DistilledThinking,
    reasoning_content: str | None,
    stages: dict[str, StageUsage],
    resolve: Resolver,
    memory_gaps: list[MemoryGap] = (),
) -> Record:
    used: dict[str, CharacterProfile] = {}
    unresolved: set[str] = set()
    label = Labels()

    def name_of(code: str) -> str:
        profile = resolve(code_map.get(code, code))
        if profile is None:
            unresolved.add(code)
            return code
        used[profile.id] = profile
        return label(profile)

    named_script = _with_names(script, resolve, used, unresolved, label)
    _resolve_text(named_script, name_of)
    absolute = named_script.shifted(video.start_s)
    thinking_text = replace_codes(thinking.as_text(), name_of)
    assistant = assistant_turn(thinking_text, named_script)
    record_plot = _record_plot(plot, thinking, video.start_s, name_of)  # before `used` is read: it adds to it
    if unresolved:
        raise UnresolvedCodes(unresolved)
    return Record(
        id=record_id(video.video_id, video.start_s, video.end_s, pipeline_version),
        video=video,
        messages=[Message(role="user", content=INSTRUCTION), Message(role="assistant", content=assistant)],
        script=absolute,
        thinking=thinking_text,
        plot=record_plot,
        characters=[_record_character(p) for p in sorted(used.values(), key=lambda p: p.id)],
        meta=_record_meta(job_id, pipeline_version, stages, reasoning_content, memory_gaps),
    )


def _record_plot(
    plot: PlotReasoning, thinking: DistilledThinking, start_s: float, name_of: Callable[[str], str]
) -> RecordPlot:
    """The plot side of the record: summaries in current names, main events on the video's clock."""
    return RecordPlot(
        summary=replace_codes(thinking.plot_summary, name_of),
        narrative=replace_codes(plot.plot_summary.narrative, name_of),
        continuity_note=(
            replace_codes(plot.segment_info.continuity_note, name_of)
            if plot.segment_info.continuity_note
            else None
        ),
        main_events=[
            e.model_copy(
                update={
                    "timestamp": e.timestamp + start_s,
                    "description": replace_codes(e.description, name_of),
                    "involved_characters": [name_of(c) for c in e.involved_characters],
                }
            )
            for e in plot.plot_summary.main_events
        ],
    )


def _record_character(p: CharacterProfile) -> RecordCharacter:
    """The profile as a record shows it: its id as `code`, and every other field a record character has."""
    return RecordCharacter(code=p.id, **p.model_dump(include=_RECORD_CHARACTER_FIELDS))


_RECORD_CHARACTER_FIELDS = frozenset(RecordCharacter.model_fields) - {"code"}


def _record_meta(
    job_id: str,
    pipeline_version: str,
    stages: dict[str, StageUsage],
    reasoning_content: str | None,
    memory_gaps: list[MemoryGap],
) -> RecordMeta:
    """Provenance of the record: job, versions, the models and prompts of every stage, their tokens and cost."""
    return RecordMeta(
        job=job_id,
        pipeline_version=pipeline_version,
        engine_version=ENGINE_VERSION,
        # lists of {key, value} sorted by stage, not dicts: the set of stages varies (a resumed or given-up
        # stage has no model), and a dict's keys would become a different struct type per shard
        models=[KeyValue(key=k, value=v.model) for k, v in sorted(stages.items()) if v.model],
        prompt_versions=[
            KeyValue(key=k, value=v.prompt_version) for k, v in sorted(stages.items()) if v.prompt_version
        ],
        tokens=RecordTokens(
            input=sum(v.input_tokens for v in stages.values()),
            output=sum(v.output_tokens for v in stages.values()),
        ),
        cost_usd=round(sum(v.cost_usd for v in stages.values()), 6),
        reasoning_content=reasoning_content,
        memory_gaps=list(memory_gaps),
    )


def _with_names(
    script: Script,
    resolve: Resolver,
    used: dict[str, CharacterProfile],
    unresolved: set[str],
    label: Callable[[CharacterProfile], str],
) -> Script:
    named = script.model_copy(deep=True)
    for event in named.events():
        if CODE_PATTERN.match(code_key(event.character)):  # "CHAR_1" is a code too, as the CPM reads it
            profile = resolve(code_key(event.character))
            if profile is None:
                unresolved.add(event.character)
                continue
            used[profile.id] = profile
            event.character_id, event.character = profile.id, label(profile)
    meta_names = []
    for code in named.meta.characters:
        is_code = bool(CODE_PATTERN.match(code_key(code)))
        profile = resolve(code_key(code)) if is_code else None
        if profile is None and is_code:
            unresolved.add(code)
        meta_names.append(label(profile) if profile else code)
    named.meta.characters = list(dict.fromkeys(meta_names))
    return named


_CODE_FIELDS = frozenset({"character", "character_id"})  # resolved by _with_names, to the profile's id/name


def _resolve_text(model: BaseModel, name_of: Callable[[str], str]) -> None:
    """Every code inside free text (actions, subtext, scene notes, high points) becomes the character's current
    name, so no code a model wrote, renamed or merged since, survives in a record."""
    for field in type(model).model_fields:
        if field in _CODE_FIELDS:
            continue
        value = getattr(model, field)
        if isinstance(value, str):
            setattr(model, field, replace_codes(value, name_of))
        elif isinstance(value, BaseModel):
            _resolve_text(value, name_of)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _resolve_text(item, name_of)
                elif isinstance(item, str):
                    value[i] = replace_codes(item, name_of)


def _clip_json(script: Script) -> str:
    """The SFT target: the script as the model should write it, clip-relative MM:SS times and final names."""
    data = script.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"script": {"__all__": {"events": {"__all__": {"character_id"}}}}},
    )
    for scene, raw in zip(data["script"], script.script, strict=True):
        for name in ("start_timestamp", "end_timestamp"):
            if getattr(raw, name) is not None:
                scene[name] = format_timestamp(getattr(raw, name))
        for event, raw_event in zip(scene["events"], raw.events, strict=True):
            event["timestamp"] = format_timestamp(raw_event.timestamp)
            if raw_event.end_timestamp is not None:
                event["end_timestamp"] = format_timestamp(raw_event.end_timestamp)
    for point, raw_point in zip(data["high_points"], script.high_points, strict=True):
        point["time_range"] = [format_timestamp(t) for t in raw_point.time_range]
    return json.dumps(data, ensure_ascii=False)
