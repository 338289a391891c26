"""Every way a segment's video reaches a model, end to end: the simulator reads the pictures (and the sound) it
receives, so each record's script can only hold what its own proxy shows. A proxy of the wrong span, a window
cut from the wrong place or frames sampled from the wrong part would put other events in the record."""

from __future__ import annotations

import os

import pytest

from annotator.schemas.script import ENVIRONMENT
from annotator.simulator.film import DEFAULT_SCREENPLAY
from annotator.simulator.screenplay import OFF_SCREEN, Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, run_job
from tests.support import e2e as checks
from tests.support.films import film_copy
from tests.support.gateway import MODELS

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]

OPENAI = {  # a vLLM-style server: its own model name for the video stages
    "V2S_PLOT_BACKEND": "openai",
    "V2S_SCRIPT_BACKEND": "openai",
    "V2S_PLOT_MODEL": MODELS["openai"],
    "V2S_SCRIPT_MODEL": MODELS["openai"],
}
MODES = {
    "gemini-inline": {},
    "gemini-upload": {"V2S_INLINE_MEDIA_MAX_BYTES": "0"},
    "gemini-offsets": {"V2S_INLINE_MEDIA_MAX_BYTES": "0", "V2S_SPLIT_PROXY_MODE": "offsets"},
    "openai-video_url": OPENAI,
    "openai-offsets": {
        **OPENAI,
        "V2S_SPLIT_PROXY_MODE": "offsets",
    },  # the window cut out, not the whole video
    "openai-frames": {**OPENAI, "V2S_OPENAI_VIDEO_MODE": "frames"},
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media-modes")
    screenplay = Screenplay.load(DEFAULT_SCREENPLAY)
    film = film_copy(screenplay, folder / "film.mp4", until_s=40)
    with SimulatorServer(screenplay) as server, checks.models_from(server, "sim-test-key-modes"):
        yield film, folder, screenplay, server


@pytest.mark.parametrize("mode", list(MODES))
def test_each_record_holds_what_its_own_video_shows(env, mode):
    film, folder, screenplay, _ = env
    saved = dict(os.environ)
    os.environ.update(MODES[mode])
    try:
        _, summary = run_job(JobSpec(source=str(film), out=folder / mode, max_segment_s=15, num_cpus=2))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert summary.segments >= 3 and summary.records_written == summary.segments, summary
    truth = screenplay.script.events()
    if mode == "openai-frames":  # what can be seen: nothing only heard (off-screen voices, sounds)
        truth = [
            e for e in truth if e.action or (e.character != ENVIRONMENT and e.voice_type not in OFF_SCREEN)
        ]
    for record in checks.records(folder / mode):
        start, end = record["video"]["start_s"], record["video"]["end_s"]
        got = sorted(e["timestamp"] for s in record["script"]["script"] for e in s["events"])
        # whole seconds in the answer, counted from the first picture sent (at most a proxy frame late)
        want = sorted(e.timestamp for e in truth if start - 1e-6 <= e.timestamp < end)
        assert len(got) == len(want) and all(abs(g - w) <= 1.0 for g, w in zip(got, want, strict=True)), (
            mode,
            start,
            got,
            want,
        )
        said = [
            e.get("dialogue") for s in record["script"]["script"] for e in s["events"] if e.get("dialogue")
        ]
        if mode == "openai-frames":  # pictures only: a vision-only model hears no line
            assert not said
        else:
            assert said == [e.dialogue for e in truth if start - 1e-6 <= e.timestamp < end and e.dialogue]
