"""What an OpenAI-compatible server takes of a clip, over the real openai SDK to the simulator: vLLM refuses
more images per prompt than its --limit-mm-per-prompt allows, Ollama takes no video_url. `v2s check` (whose
calls carry the stage's media shape) and a stage's first call name the setting to change."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from PIL import Image

from annotator.gateway import Gateway, Media
from annotator.gateway.base import ModelCallError
from annotator.pricing import Price
from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot
from annotator.simulator.server import SimulatorServer
from jobs.check import check_models
from tests.support.gateway import KEY, settings_for
from tests.support.recording import Recording
from workers.storage import file_sha256

OLLAMA = "qwen2.5vl:7b"
FREE = {OLLAMA: Price(input_per_m=0.0, output_per_m=0.0)}  # a local model: priced by the user, at nothing
CHECK = "## Configuration check\n\nReply with the smallest JSON object."


def _jpeg() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(buffer, "JPEG")
    url = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def _video(proxy) -> dict:
    url = "data:video/mp4;base64," + base64.b64encode(proxy.read_bytes()).decode()
    return {"type": "video_url", "video_url": {"url": url}}


def _ask(chat, model: str, parts: list[dict]):
    content = [*parts, {"type": "text", "text": CHECK}]
    return chat.chat.completions.create(model=model, messages=[{"role": "user", "content": content}])


def test_the_simulator_refuses_media_like_vllm_and_ollama(play, proxy):
    with SimulatorServer(play) as server:
        server.limit_mm_per_prompt = {"image": 4, "video": 0}
        chat = openai.OpenAI(api_key=KEY, base_url=server.base_url + "/v1", max_retries=0)
        with pytest.raises(openai.BadRequestError) as images:
            _ask(chat, "v2s-sim", [_jpeg()] * 5)
        assert images.value.body["message"] == (
            "At most 4 image(s) may be provided in one prompt. Set `--limit-mm-per-prompt` to increase this limit."
        )
        assert _ask(chat, "v2s-sim", [_jpeg()] * 4).choices  # within the limit
        with pytest.raises(openai.BadRequestError, match=r"At most 0 video\(s\) may be provided"):
            _ask(chat, "v2s-sim", [_video(proxy)])
        with pytest.raises(openai.BadRequestError) as video:
            _ask(chat, OLLAMA, [_video(proxy)])
        assert video.value.body == {
            "message": "invalid message format",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        assert _ask(chat, OLLAMA, [_jpeg()] * 40).choices  # Ollama: images, no per-prompt limit


def _frames_on_vllm(server, **overrides):
    values = {"plot_backend": "openai", "plot_model": "v2s-sim", "openai_video_mode": "frames"}
    return settings_for(server, openai_max_frames=8, **{**values, **overrides})


def test_check_names_the_image_limit_and_passes_once_it_is_set(play, proxy):
    scenario = Recording()
    with SimulatorServer(play, behaviours=scenario) as server:
        server.limit_mm_per_prompt = {"image": 4, "video": 1}
        with pytest.raises(ModelCallError) as refused:
            check_models(_frames_on_vllm(server))
        message = str(refused.value)
        assert message.startswith("plot: v2s-sim refused") and "\n" not in message
        assert "at most 4 image(s) per prompt" in message and "V2S_OPENAI_MAX_IMAGES=4" in message
        assert server.request_count() == 0  # refused at the check: no stage call was made

        settings = _frames_on_vllm(server, openai_max_images=4)
        report = check_models(settings)
        assert [s.outcome for s in report.stages] == ["ok"] * 4
        result = _plot(settings, proxy)
        assert result.ok, result.error
        assert [i.frames for i in scenario.seen] == [4]  # the frames capped at the server's limit


def test_the_first_call_names_the_setting_without_a_check(play, proxy):
    with SimulatorServer(play) as server:
        server.limit_mm_per_prompt = {"image": 4, "video": 1}
        result = _plot(_frames_on_vllm(server), proxy)
        assert result.outcome == "config" and "V2S_OPENAI_MAX_IMAGES=4" in result.error
        assert server.request_count() == 1  # refused once, not retried nor repaired


def test_check_finds_that_ollama_takes_no_video_and_names_frames_mode(play, proxy):
    on_ollama = {"plot_backend": "openai", "plot_model": OLLAMA, "prices": FREE}
    with SimulatorServer(play) as server:
        with pytest.raises(ModelCallError) as refused:
            check_models(settings_for(server, **on_ollama))
        message = str(refused.value)
        assert message.startswith(f"plot: {OLLAMA} refused") and "V2S_OPENAI_VIDEO_MODE=frames" in message
        settings = settings_for(server, openai_video_mode="frames", openai_max_frames=8, **on_ollama)
        assert [s.outcome for s in check_models(settings).stages] == ["ok"] * 4
        result = _plot(settings, proxy)
        assert result.ok, result.error


def _plot(settings, proxy):
    return Gateway(settings).structured(
        stage="plot",
        backend="openai",
        model=settings.plot_model,
        prompt=render("plot_first", 1, segment_index=1, duration="30s"),
        schema=FirstSegmentPlot,
        media=Media(path=proxy, sha256=file_sha256(proxy)),
    )


def test_video_stages_on_the_openai_backend_are_warned_once_that_they_get_no_sound(play):
    """Neither a video_url (the server's video processor drops the sound) nor frames carry the clip's audio:
    the check before a run or a plan says once that dialogue and sound cues come only from the pictures."""
    from rich.console import Console

    from jobs.runner import check_before_work

    with SimulatorServer(play) as server:
        console = Console(record=True, width=400)
        moved = settings_for(server, plot_backend="openai", plot_model="v2s-sim")
        check_before_work(console, moved, calls=False)
        said = console.export_text()
        assert (
            said.count("warning:") == 1
            and "plot (v2s-sim)" in said
            and "script" not in said.split("warning:")[1]
        )
        assert "dialogue, names said aloud and sound cues come only from what the pictures show" in said
        assert check_models(settings_for(server), calls=False).warnings == []  # Gemini hears the proxy
