"""The simulator answers from the media it receives, never from our metadata: the pictures say which part of
the film a request shows (the film mark), the sound whether what is said there was heard. Every way a video
reaches it (inline, a Files API upload, videoMetadata offsets, an OpenAI video_url, sampled frames) is read."""

from __future__ import annotations

import base64
import subprocess

import openai
import pytest
from google import genai
from google.genai import types

from annotator.gateway.base import Media
from annotator.gateway.clip_media import sample_frames
from annotator.media import ffmpeg_exe
from annotator.schemas import FirstSegmentPlot, Script
from annotator.simulator.server import SimulatorServer
from tests.simulator.test_server import KEY, ask, first_prompt, inline
from tests.support.gateway import MODELS
from tests.support.play import make_proxy, segment_provenance, small_screenplay

SCENE_2 = {"Dev Rao"}  # only in 30–60 s


@pytest.fixture(scope="module")
def server():
    with SimulatorServer(small_screenplay()) as running:
        yield running


@pytest.fixture(scope="module")
def gemini(server):
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reading")
    proxies = {
        "first": make_proxy(folder / "first.mp4", segment_provenance(1, 0.0, 30.0)),
        "second": make_proxy(folder / "second.mp4", segment_provenance(2, 30.0, 60.0)),
        "whole": make_proxy(folder / "whole.mp4", segment_provenance(0, 0.0, 90.0)),
        "silent": make_proxy(folder / "silent.mp4", segment_provenance(2, 30.0, 60.0), audio=False),
        "truncated": make_proxy(folder / "truncated.mp4", segment_provenance(2, 30.0, 60.0), seconds=12.0),
    }
    proxies["swapped"] = folder / "swapped.mp4"  # the second segment's pictures under the first one's tag
    retag = [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(proxies["second"]), "-c", "copy"]
    tag = segment_provenance(1, 0.0, 30.0).to_tag()
    subprocess.run([*retag, "-metadata", f"comment={tag}", str(proxies["swapped"])], check=True)
    foreign = folder / "foreign.mp4"  # the second segment's pictures with the first segment's sound
    mix = [
        ffmpeg_exe(),
        "-y",
        "-loglevel",
        "error",
        "-i",
        str(proxies["second"]),
        "-i",
        str(proxies["first"]),
    ]
    subprocess.run([*mix, "-map", "0:v", "-map", "1:a", "-c", "copy", str(foreign)], check=True)
    proxies["foreign"] = foreign
    return proxies


def _plot(client, part) -> FirstSegmentPlot:
    return FirstSegmentPlot.model_validate_json(ask(client, part, first_prompt(), "plot-first").text)


def _script(client, part) -> Script:
    return Script.model_validate_json(ask(client, part, "Write the script.", "script").text)


def _names(plot: FirstSegmentPlot) -> set[str]:
    return {c.name for c in plot.characters if c.name}


def test_a_proxy_is_placed_by_its_pictures_not_its_tag(gemini, server, made):
    plot = _plot(gemini, inline(made["swapped"]))  # tagged 0–30 s, shows 30–60 s
    assert _names(plot) >= SCENE_2
    assert (server.requests[-1].start_s, server.requests[-1].end_s) == (30.0, 60.0)


def test_every_way_of_sending_a_clip_shows_the_same_window(gemini, server, made):
    uploaded = gemini.files.upload(
        file=str(made["whole"]), config=types.UploadFileConfig(mime_type="video/mp4")
    )
    window = types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
    window.video_metadata = types.VideoMetadata(start_offset="30s", end_offset="60s")
    own = gemini.files.upload(file=str(made["second"]), config=types.UploadFileConfig(mime_type="video/mp4"))
    parts = [inline(made["second"]), types.Part.from_uri(file_uri=own.uri, mime_type="video/mp4"), window]
    scripts = [_script(gemini, part) for part in parts]
    assert [(r.start_s, r.end_s) for r in server.requests[-3:]] == [(30.0, 60.0)] * 3
    assert scripts[0].events() and all(s.model_dump() == scripts[0].model_dump() for s in scripts)
    assert any(e.dialogue == "Fresh bread, two for one!" for e in scripts[0].events())
    assert all(0 <= e.timestamp <= 30 for e in scripts[0].events())  # counted from the first frame received


def test_openai_video_url_is_read_and_heard_frames_are_seen_only(server, made):
    chat = openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)
    data = base64.b64encode(made["second"].read_bytes()).decode()
    video = {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}
    frames = sample_frames(Media(path=made["second"], sha256="-"), fps=1.0, max_frames=32)
    images = [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(f).decode()}}
        for f in frames.images
    ]
    answers = []
    for media in ([video], images):
        content = [*media, {"type": "text", "text": "Write the script."}]
        reply = chat.chat.completions.create(
            model=MODELS["openai"],
            messages=[{"role": "user", "content": content}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "script", "schema": {"title": "Script"}},
            },
        )
        answers.append(Script.model_validate_json(reply.choices[0].message.content))
        assert server.requests[-1].start_s == 30.0 and abs(server.requests[-1].end_s - 60.0) <= 1.0
    heard, seen = answers
    assert any(e.dialogue for e in heard.events())
    assert seen.events() and not any(e.dialogue for e in seen.events())  # a vision-only model hears nothing


@pytest.mark.parametrize("which", ["silent", "foreign"])
def test_without_the_clips_own_sound_nothing_said_there_is_known(gemini, made, which):
    """No audio, or another span's audio under the pictures: no dialogue, and Ben, first named at 00:50 inside
    this clip, stays unnamed; what is seen is still told."""
    heard = _plot(gemini, inline(made["second"]))
    deaf = _plot(gemini, inline(made[which]))
    assert "Ben Okafor" in _names(heard) and "Ben Okafor" not in _names(deaf)
    assert {c.name for c in heard.characters} >= SCENE_2 and len(deaf.characters) == len(heard.characters)
    script = _script(gemini, inline(made[which]))
    assert script.events() and not any(e.dialogue for e in script.events())


def test_a_truncated_proxy_is_answered_for_what_it_shows(gemini, server, made):
    script = _script(gemini, inline(made["truncated"]))
    assert (server.requests[-1].start_s, server.requests[-1].end_s) == (30.0, 42.0)
    assert script.events() and max(e.timestamp for e in script.events()) < 12.0


def test_an_offsets_window_sent_to_a_chat_server_is_cut_to_the_window(server, made):
    """Chat servers take no videoMetadata: the window is cut out of the whole video's proxy before sending."""
    from annotator.gateway.clip_media import window_video
    from annotator.simulator.media_reader import read_video

    media = Media(path=made["whole"], sha256="-", start_offset_s=30.0, end_offset_s=60.0)
    seen = read_video(window_video(media), small_screenplay(), None, None)
    assert (seen.start_s, round(seen.end_s, 1), seen.heard) == (30.0, 60.0, True)
