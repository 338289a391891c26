"""A small screenplay and tagged proxies for the simulator and gateway tests.

90 s, 3 scenes of 30 s, 4 cast: Ada changes into a yellow raincoat at 60 s; Ben's name is first said at 50 s;
Cleo is named throughout; Dev appears only in scene 2.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from annotator.media import ffmpeg_exe
from annotator.schemas.provenance import Provenance
from annotator.simulator.film import render_film
from annotator.simulator.screenplay import Screenplay

ADA_COAT = "Woman in her thirties, short red hair, long grey wool coat"
ADA_RAINCOAT = "The same woman in a bright yellow raincoat with the hood up"
BEN_LOOK = "Tall young man, shaved head, green army jacket"
BEN_NAMING_LINE = "Ben? Ben Okafor? From school?"

PLAY = {
    "title": "The Last Train",
    "duration_s": 90,
    "cast": [
        {
            "name": "Ada Marsh",
            "aliases": ["Ada"],
            "appearance": ADA_COAT,
            "costumes": [{"from_s": "01:00", "appearance": ADA_RAINCOAT}],
            "voice": "Quick, warm alto",
            "personality": "Restless, kind",
            "role_type": "Protagonist",
        },
        {
            "name": "Ben Okafor",
            "aliases": ["Ben"],
            "appearance": BEN_LOOK,
            "voice": "Soft baritone",
            "personality": "Shy, persistent",
            "role_type": "Main",
            "named_at": "00:50",
        },
        {
            "name": "Cleo Park",
            "aliases": ["Cleo"],
            "appearance": "Older woman with a silver braid and round glasses, knitted cardigan",
            "voice": "Dry, slow",
            "role_type": "Supporting",
        },
        {
            "name": "Dev Rao",
            "aliases": ["Dev"],
            "appearance": "Bearded man in a white baker's apron",
            "voice": "Loud, cheerful",
            "role_type": "Background",
        },
    ],
    "script": {
        "meta": {"title": "The Last Train", "duration": "01:30"},
        "script": [
            {
                "scene_id": 1,
                "location": "Corner cafe",
                "type": "Interior",
                "environment": "Small cafe with steamed-up windows",
                "time": "Day",
                "mood": "Cosy",
                "start_timestamp": "00:00",
                "events": [
                    {
                        "timestamp": "00:01",
                        "character": "Environment",
                        "audio_cue": "Soft jazz music on the radio",
                    },
                    {"timestamp": "00:03", "character": "Ada Marsh", "dialogue": "Morning, Cleo. The usual?"},
                    {
                        "timestamp": "00:07",
                        "character": "Cleo Park",
                        "dialogue": "Only if you're making it, Ada.",
                    },
                    {"timestamp": "00:12", "character": "Ben Okafor", "action": "Walks in and looks around"},
                    {"timestamp": "00:16", "character": "Ben Okafor", "dialogue": "Is this seat taken?"},
                    {"timestamp": "00:20", "character": "Ada Marsh", "dialogue": "Help yourself."},
                    {
                        "timestamp": "00:25",
                        "character": "Environment",
                        "action": "The door swings shut",
                        "audio_cue": "Door bell rings",
                    },
                ],
            },
            {
                "scene_id": 2,
                "location": "Market street",
                "type": "Exterior",
                "environment": "Busy street market with bread stalls",
                "time": "Day",
                "mood": "Tense",
                "start_timestamp": "00:30",
                "events": [
                    {"timestamp": "00:32", "character": "Dev Rao", "dialogue": "Fresh bread, two for one!"},
                    {"timestamp": "00:36", "character": "Cleo Park", "dialogue": "Dev, save me a loaf."},
                    {
                        "timestamp": "00:41",
                        "character": "Ben Okafor",
                        "action": "Follows Ada through the crowd",
                    },
                    {"timestamp": "00:45", "character": "Ada Marsh", "dialogue": "Why are you following me?"},
                    {"timestamp": "00:50", "character": "Ada Marsh", "dialogue": BEN_NAMING_LINE},
                    {"timestamp": "00:55", "character": "Ben Okafor", "dialogue": "Took you long enough."},
                ],
            },
            {
                "scene_id": 3,
                "location": "Train station platform",
                "type": "Exterior",
                "environment": "Open platform in the rain",
                "time": "Dusk",
                "mood": "Sad",
                "start_timestamp": "01:00",
                "events": [
                    {"timestamp": "01:02", "character": "Environment", "audio_cue": "Train horn"},
                    {
                        "timestamp": "01:05",
                        "character": "Ben Okafor",
                        "dialogue": "Ada, wait! You forgot this.",
                    },
                    {
                        "timestamp": "01:10",
                        "character": "Ada Marsh",
                        "action": "Pulls her hood down",
                        "dialogue": "Keep it. I won't need it where I'm going.",
                    },
                    {"timestamp": "01:18", "character": "Cleo Park", "dialogue": "Ada! The train's leaving!"},
                    {
                        "timestamp": "01:25",
                        "character": "Environment",
                        "action": "The doors close",
                        "audio_cue": "Hiss",
                    },
                ],
            },
        ],
        "high_points": [
            {
                "id": 1,
                "type": "Recognition",
                "time_range": ["00:45", "00:55"],
                "description": "Ada knows Ben",
            },
            {"id": 2, "type": "Farewell", "time_range": ["01:05", "01:15"], "description": "Ada leaves"},
        ],
    },
}

SEGMENTS = [(1, 0.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 90.0)]


def small_screenplay() -> Screenplay:
    return Screenplay.model_validate(PLAY)


@cache
def play_film() -> Path:
    """The small screenplay rendered once per test process (its pictures carry the film mark the simulator
    reads); removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="v2s-play-film-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return render_film(small_screenplay(), folder / "last_train.mp4", width=320, height=180, fps=10)


def make_proxy(
    path: Path, provenance: Provenance | None, *, seconds: float | None = None, audio: bool = True
) -> Path:
    """A real proxy of the small screenplay's film, cut like the engine's: the span the provenance names (or,
    with `seconds`, that many seconds from its start; without provenance, from the film's start), 180 lines
    at 5 fps, with sound unless `audio` is False, and the provenance as its `comment` tag."""
    start = provenance.start_s if provenance is not None else 0.0
    length = seconds if seconds is not None else (provenance.end_s - start if provenance else 1.0)
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error"]
    cmd += ["-ss", f"{start:.3f}", "-t", f"{length:.3f}", "-i", str(play_film()), "-vf", "fps=5"]
    if provenance is not None:
        cmd += ["-metadata", f"comment={provenance.to_tag()}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", "aac"] if audio else ["-an"]
    subprocess.run([*cmd, str(path)], check=True)
    return path


def segment_provenance(index: int, start: float, end: float) -> Provenance:
    return Provenance(
        video_id="vid-last-train",
        source_uri="file:///films/last_train.mp4",
        segment_index=index,
        start_s=start,
        end_s=end,
    )
