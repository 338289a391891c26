"""How the splitter decides: every threshold of shot detection, speech detection, planning and proxies.

`SplitSettings()` reads `V2S_SPLIT_…` environment variables (nested with `__`, e.g.
`V2S_SPLIT_SHOTS__DETECTOR=adaptive`, `V2S_SPLIT_SPEECH__VAD=none`), so a Ray worker picks up the same settings as
the driver that started it without a new argument on every task.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# `v2s` is the detector of workers/splitter/shots.py; the others are PySceneDetect's detectors, fed the same
# PyAV frames and then put through the same persistence and minimum-length filters.
Detector = Literal["v2s", "adaptive", "content", "histogram", "hash"]


class ShotSettings(BaseModel):
    detector: Detector = "v2s"
    analysis_width: int = Field(128, ge=32, le=640)  # frames are decoded scaled to this width (aspect kept)
    min_shot_s: float = 0.6  # two cuts closer than this: the stronger one is kept
    # hard cuts: the frame-to-frame distance (0-100 scale) must clear an absolute floor and stand out from its
    # neighbours; the floor is what keeps compression pulses (a keyframe refreshing an unchanged picture) out
    cut_score: float = 12.0
    cut_ratio: float = 2.5
    neighbours: int = 2
    # flashes: the picture `persist_s` after an event must still differ from the one before it
    persist_s: float = 0.5
    persist_score: float = 8.0
    persist_ratio: float = 0.4  # …by at least this fraction of the cut's own step
    dominance: float = 0.5  # a hard cut's step is at least this fraction of the change across ±persist_s
    # gradual transitions (dissolves, fades): pictures `gradual_window_s` apart on either side of the centre
    # differ a lot while each side is steady
    gradual_window_s: float = 0.75
    gradual_score: float = 18.0
    gradual_ratio: float = 1.6  # …and changes this many times more than either side does
    black_luma: float = (
        22.0  # mean luma (0-255) below which a flat frame is black (fade-through-black centres)
    )
    # decoded frames may fall short of duration × fps by this fraction (plus a few frames) before the video
    # fails; a shortfall beyond it means the decoder skipped frames and cuts would be missed silently
    max_missing_fraction: float = 0.05
    scenedetect_options: dict[
        str, float | int | bool
    ] = {}  # keyword arguments for the PySceneDetect detector
    # scenes: adjacent shots whose pictures are this alike (0-100 distance of their mean pictures) are one
    # scene; a shot is compared with the last `scene_lookback` shots (shot / reverse shot stays one scene)
    scene_score: float = 30.0
    scene_lookback: int = 3


class SpeechSettings(BaseModel):
    vad: Literal["silero", "none"] = "silero"
    threshold: float = 0.5  # speech probability at which a window counts as speech
    min_speech_s: float = 0.2  # shorter bursts are not speech
    min_gap_s: float = 0.5  # shorter pauses inside a line (commas, breaths) do not end it
    pad_s: float = 0.15  # a line is widened by this on both sides (onsets are soft)
    subtitles: bool = True  # embedded text subtitle streams and sidecar .srt/.vtt files are dialogue spans


class PlanSettings(BaseModel):
    min_segment_s: float = 5.0
    # the preferred part of each window, as a fraction of max_segment_s from its start: a boundary there keeps
    # segments near their maximum length; earlier boundaries are used only when that part has none that fits
    preferred_from: float = 0.5
    min_gap_s: float = 0.3  # a pause shorter than this is no place for a boundary without a shot cut


class ProxySettings(BaseModel):
    height: int = 360
    fps: float = 6.0
    # superfast at crf 32 looks the same as veryfast at crf 30 (SSIM 0.9927 vs 0.9931 on the bench film's 360p
    # proxy) for 38% less encoding time and 13% more bytes: the proxy's encode is most of the split's time after
    # the decode, and bytes cost nothing in tokens
    crf: int = 32
    preset: str = "superfast"
    audio_bitrate: str = "64k"
    deinterlace: Literal["auto", "always", "never"] = "auto"  # auto: when the analysis saw interlaced frames
    square_pixels: bool = True
    crop_letterbox: bool = True
    bar_luma: float = 28.0  # rows/columns never brighter than this over the whole film are letterbox bars
    min_bar_fraction: float = 0.02  # bars thinner than this fraction of the picture are not cropped
    # the analysis writes the whole video at this × the proxy height (workers/splitter/intermediate.py) and the
    # proxies are cut from it; a letterboxed film's proxy then has (cropped rows) × this, at most `height`.
    # 1.0 is the fastest; 4/3 keeps a 2.39:1 film inside a 16:9 frame at the full proxy height
    intermediate_headroom: float = Field(1.0, ge=1.0, le=3.0)


class SplitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="V2S_SPLIT_", env_nested_delimiter="__", extra="ignore")

    # segments: one proxy file per segment; offsets: one proxy per video (the whole video at proxy size),
    # uploaded once, each segment addressed by VideoMetadata start/end offsets (docs/splitting.md)
    proxy_mode: Literal["segments", "offsets"] = "segments"
    shots: ShotSettings = ShotSettings()
    speech: SpeechSettings = SpeechSettings()
    plan: PlanSettings = PlanSettings()
    proxy: ProxySettings = ProxySettings()
