"""The four stages put together: `evaluate` (one video), `evaluate_dataset` (many) and `segmented_reward`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evaluation.alignment import Alignment, AlignSettings, align
from evaluation.characters import ACCEPT_THRESHOLD, CharacterMapping, map_characters
from evaluation.fields import score_fields
from evaluation.identity import (
    IdentityItem,
    IdentityResult,
    IdentityScope,
    count_cast_events,
    identity_items,
    pool_by_scope,
    score_identity,
)
from evaluation.judges import Judge, get_judge
from evaluation.loader import load_scripts
from evaluation.metrics import LevelResult
from evaluation.schema import EVENT_FIELDS, SCENE_FIELDS, Script, as_script, script_units
from evaluation.temporal import THRESHOLDS, temporal_counts

ScriptLike = Script | Mapping[str, Any] | Any


@dataclass(frozen=True)
class EvalSettings:
    """Knobs of the metrics; the defaults are the paper's."""

    align: AlignSettings = field(default_factory=AlignSettings)
    """the alignment's knobs (group size, window, time bonus, text weights), as evaluation.alignment defines them"""
    scene_window_s: float = 30.0
    """the alignment window for scenes (the paper gives no scene value; the event value is kept)"""
    default_tail_s: float = 5.0
    """length of the last scene when neither its end, a next scene nor the script duration is known"""
    thresholds: tuple[float, ...] = THRESHOLDS
    char_threshold: float = ACCEPT_THRESHOLD
    identity_scope: IdentityScope = "video"
    """identity metric (v2s addition): B-cubed per video, or per series (episodes share identities)"""

    def __post_init__(self) -> None:
        if self.identity_scope not in ("video", "series"):
            raise ValueError("identity_scope must be 'video' or 'series'")

    def align_settings(self, level: str) -> AlignSettings:
        return self.align if level == "event" else replace(self.align, window_s=self.scene_window_s)


@dataclass
class VideoResult:
    id: str
    events: LevelResult
    scenes: LevelResult
    event_alignment: Alignment | None = None
    scene_alignment: Alignment | None = None
    characters: CharacterMapping = field(default_factory=CharacterMapping)
    identity: IdentityResult = field(default_factory=IdentityResult)
    """v2s addition, not in the paper: B-cubed character identity over this video's aligned events"""
    identity_items: list[IdentityItem] = field(default_factory=list)
    series: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "events": self.events.to_dict(),
            "scenes": self.scenes.to_dict(),
            "character_mapping": dict(self.characters.mapping),
            "v2s_additions": {"identity": self.identity.to_dict()},
        }


@dataclass
class DatasetResult:
    """Dataset figures: numerators and denominators summed over videos, then divided."""

    videos: list[VideoResult]
    events: LevelResult
    scenes: LevelResult
    missing_predictions: list[str] = field(default_factory=list)
    """GT ids with no prediction (scored against an empty script: all misses)"""
    unmatched_predictions: list[str] = field(default_factory=list)
    """predicted ids with no GT (not scored)"""
    identity: IdentityResult = field(default_factory=IdentityResult)
    """v2s addition, not in the paper: B-cubed identity, one scope per video (or series), items pooled"""
    identity_scope: IdentityScope = "video"

    def to_dict(self, per_video: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "videos": len(self.videos),
            "events": self.events.to_dict(),
            "scenes": self.scenes.to_dict(),
            "missing_predictions": self.missing_predictions,
            "unmatched_predictions": self.unmatched_predictions,
            "v2s_additions": {"identity": {**self.identity.to_dict(), "scope": self.identity_scope}},
        }
        if per_video:
            out["per_video"] = [v.to_dict() for v in self.videos]
        return out


def evaluate(
    gt: ScriptLike,
    pred: ScriptLike,
    *,
    judge: Judge | str | None = None,
    settings: EvalSettings | None = None,
    id: str | None = None,
) -> VideoResult:
    """Score one predicted script against its ground truth: event level and scene level."""
    settings = settings or EvalSettings()
    judge = get_judge(judge)
    gt_script, pred_script = as_script(gt), as_script(pred)
    gt_units = script_units(gt_script, settings.default_tail_s)
    pred_units = script_units(pred_script, settings.default_tail_s)

    ev_align = align(gt_units.events, pred_units.events, settings.align_settings("event"))
    mapping = map_characters(gt_units.events, pred_units.events, judge, settings.char_threshold)
    events = LevelResult(
        fields=score_fields(
            ev_align.groups, gt_units.events, pred_units.events, EVENT_FIELDS, judge, rename=mapping.apply
        ),
        temporal=temporal_counts(ev_align.groups, gt_units.events, pred_units.events, settings.thresholds),
        groups=_group_kinds(ev_align),
    )
    video_id = id or gt_script.id or pred_script.id
    items = identity_items(
        ev_align.groups,
        gt_units.events,
        pred_units.events,
        video=video_id,
        settings=settings.align_settings("event"),
    )
    identity = score_identity(items, scope=video_id, cast_events=count_cast_events(gt_units.events))
    sc_align = align(gt_units.scenes, pred_units.scenes, settings.align_settings("scene"))
    scenes = LevelResult(
        fields=score_fields(
            sc_align.groups, gt_units.scenes, pred_units.scenes, SCENE_FIELDS, judge, level="scene"
        ),
        temporal=temporal_counts(sc_align.groups, gt_units.scenes, pred_units.scenes, settings.thresholds),
        groups=_group_kinds(sc_align),
    )
    return VideoResult(
        id=video_id,
        events=events,
        scenes=scenes,
        event_alignment=ev_align,
        scene_alignment=sc_align,
        characters=mapping,
        identity=identity,
        identity_items=items,
        # the prediction's records carry the series (CPM scope); a GT screenplay may name it too
        series=pred_script.series or gt_script.series,
    )


def _group_kinds(alignment: Alignment) -> dict[str, int]:
    kinds = {"aligned": 0, "miss": 0, "hallucination": 0}
    for group in alignment.groups:
        kinds[group.kind] += 1
    return kinds


def _as_collection(value: Any) -> dict[str, Script]:
    """{id: Script} from a path, one script (dict or model), an {id: script} mapping or a list of scripts."""
    if isinstance(value, str | Path):
        return load_scripts(value)
    if isinstance(value, BaseModel) or (isinstance(value, Mapping) and "script" in value):
        single = as_script(value).model_copy()
        return {single.id or "0": single}
    out: dict[str, Script] = {}
    items = value.items() if isinstance(value, Mapping) else ((None, v) for v in value)
    for n, (key, item) in enumerate(items):
        script = as_script(item).model_copy()
        script.id = str(key) if key is not None else script.id or str(n)
        out[script.id] = script
    return out


def evaluate_dataset(
    gt: str | Path | Mapping[str, ScriptLike] | Sequence[ScriptLike],
    pred: str | Path | Mapping[str, ScriptLike] | Sequence[ScriptLike],
    *,
    judge: Judge | str | None = None,
    settings: EvalSettings | None = None,
) -> DatasetResult:
    """Score many videos: paths (see `load_scripts`), {id: script} mappings or lists of scripts.

    Pairs are matched by id; when each side holds exactly one script they are paired whatever their ids.
    A GT script without a prediction is scored against an empty one; a prediction without GT is reported and
    skipped. Dataset figures sum S_total, N_pred, N_gt (and hits, group counts) over videos before dividing.
    The identity metric (a v2s addition) is B-cubed per video, or per series with
    `EvalSettings(identity_scope="series")`, its sums pooled over the scopes (`evaluation.identity`).
    """
    judge = get_judge(judge)
    settings = settings or EvalSettings()
    gts, preds = _as_collection(gt), _as_collection(pred)
    if len(gts) == 1 and len(preds) == 1:
        (gid, g), (_, p) = next(iter(gts.items())), next(iter(preds.items()))
        pairs: list[tuple[str, Script, Script]] = [(gid, g, p)]
        missing: list[str] = []
        extra: list[str] = []
    else:
        pairs = [(gid, g, preds.get(gid) or Script(id=gid)) for gid, g in gts.items()]
        missing = [gid for gid in gts if gid not in preds]
        extra = [pid for pid in preds if pid not in gts]
    videos = [evaluate(g, p, judge=judge, settings=settings, id=gid) for gid, g, p in pairs]
    events, scenes = LevelResult(), LevelResult()
    for video in videos:
        events = events + video.events
        scenes = scenes + video.scenes
    identity = pool_by_scope(
        [(v.id, v.series, v.identity_items, v.identity.cast_events) for v in videos], settings.identity_scope
    )
    return DatasetResult(videos, events, scenes, missing, extra, identity, settings.identity_scope)


REWARD_TIOU = 0.5


def segmented_reward(
    pred: ScriptLike,
    gt: ScriptLike,
    *,
    judge: Judge | str | None = None,
    settings: EvalSettings | None = None,
) -> float:
    """A reward in [0, 1] for RL: ½·(event-level Overall F1) + ½·(event tIoU@0.5).

    Overall is the mean of the defined event field F1s (character, dialogue, action, expression, audio cue).
    An undefined part (nothing on either side) drops out and the other carries the weight; 0.0 if neither is
    defined. The offline lexical judge is the default, so the reward is deterministic and costs nothing.
    """
    settings = settings or EvalSettings()
    if REWARD_TIOU not in settings.thresholds:
        settings = replace(settings, thresholds=(*settings.thresholds, REWARD_TIOU))
    result = evaluate(gt, pred, judge=judge, settings=settings)
    parts = [result.events.overall()["f1"], result.events.tiou(REWARD_TIOU)]
    defined = [p for p in parts if p is not None]
    return sum(defined) / len(defined) if defined else 0.0
