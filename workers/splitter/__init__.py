"""Split a video into segments (DESIGN §2): one PyAV pass for shots, letterbox and speech; boundaries at shot cuts
outside dialogue, preferring scene changes; all proxies from one ffmpeg run.

    result = split_video(path, info, max_segment_s, workdir=scratch)  # probe first: info = media.probe(path)
    with ProxyBatch(path, tags, settings.proxy, result.transform, info.has_audio, result.intermediate) as batch:
        ensure_proxy(out, video_id, idx, lambda target: batch.make(idx, target))

With `workdir`, the analysis also writes the whole video at proxy size there (workers/splitter/intermediate.py), and
the proxies are cut from that instead of decoding the source a second time; the caller removes `workdir`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from annotator.media import MediaInfo
from annotator.schemas.provenance import Provenance
from workers.splitter.decode import Analysis, Crop, analyse
from workers.splitter.intermediate import Intermediate
from workers.splitter.plan import Dialogue, SegmentPlan, plan, plan_segments
from workers.splitter.proxy import ProxyBatch, ProxyTransform
from workers.splitter.settings import (
    PlanSettings,
    ProxySettings,
    ShotSettings,
    SpeechSettings,
    SplitSettings,
)
from workers.splitter.shots import Cut, find_cuts, mark_scenes
from workers.splitter.speech import Span, detect_silences, merge_spans, sidecar_spans


@dataclass
class SplitResult:
    plans: list[SegmentPlan]
    cuts: list[Cut]
    dialogue: list[Span]
    transform: ProxyTransform
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went: analyse, plan
    notes: list[str] = field(default_factory=list)
    intermediate: Intermediate | None = None


def split_video(
    path: Path,
    info: MediaInfo,
    max_segment_s: float,
    settings: SplitSettings | None = None,
    *,
    name: str | None = None,
    sidecar_of: Path | None = None,
    workdir: Path | None = None,
) -> SplitResult:
    """Plan the segments of one video. `sidecar_of`: where to look for .srt/.vtt files (the original path when
    `path` is a downloaded copy; by default `path` itself). `workdir`: where the intermediate for the proxies
    goes (none without it). Raises MediaError naming the file."""
    settings = settings or SplitSettings()
    began = time.perf_counter()
    whole = Path(workdir) / f"whole-{uuid.uuid4().hex[:12]}.mkv" if workdir is not None else None
    analysis = analyse(path, settings, name=name, listen=info.has_audio, intermediate=whole)
    analysed = time.perf_counter()
    cuts = mark_scenes(
        find_cuts(analysis.features, analysis.fps, settings.shots, analysis.external_cuts),
        analysis.features,
        settings.shots,
    )
    lines = analysis.speech.spans(settings.speech) + analysis.subtitles
    if settings.speech.subtitles:
        lines += sidecar_spans(sidecar_of or path)
    dialogue = Dialogue(merge_spans(lines), analysis.speech, settings.speech.threshold)
    plans = plan(info.duration_s, cuts, max_segment_s, dialogue, settings.plan)
    return SplitResult(
        plans=plans,
        cuts=cuts,
        dialogue=dialogue.spans,
        transform=transform_of(analysis, settings.proxy),
        seconds={"analyse": analysed - began, "plan": time.perf_counter() - analysed},
        notes=analysis.notes,
        intermediate=analysis.intermediate,
    )


def transform_of(analysis: Analysis, settings: ProxySettings) -> ProxyTransform:
    deinterlace = settings.deinterlace == "always" or (settings.deinterlace == "auto" and analysis.interlaced)
    return ProxyTransform(deinterlace=deinterlace, crop=analysis.crop, sar=analysis.sar)


def detect_shots(path: Path, settings: SplitSettings | None = None) -> list[float]:
    """Shot-cut times in seconds (the video decoded once with PyAV; no audio)."""
    settings = settings or SplitSettings()
    analysis = analyse(Path(path), settings, listen=False)
    return [
        c.time_s for c in find_cuts(analysis.features, analysis.fps, settings.shots, analysis.external_cuts)
    ]


def make_proxy(
    source: Path,
    target: Path,
    provenance: Provenance,
    *,
    height: int = 360,
    fps: float = 6.0,
    transform: ProxyTransform | None = None,
) -> Path:
    """One proxy with audio and the provenance tag, written atomically (a video's proxies together: ProxyBatch)."""
    settings = SplitSettings().proxy.model_copy(update={"height": height, "fps": fps})
    with ProxyBatch(Path(source), [provenance], settings, transform, None) as batch:
        return batch.make(provenance.segment_index, Path(target))


__all__ = [
    "Crop",
    "Cut",
    "Intermediate",
    "MediaInfo",
    "PlanSettings",
    "ProxyBatch",
    "ProxySettings",
    "ProxyTransform",
    "SegmentPlan",
    "ShotSettings",
    "SpeechSettings",
    "SplitResult",
    "SplitSettings",
    "detect_shots",
    "detect_silences",
    "make_proxy",
    "plan_segments",
    "split_video",
]
