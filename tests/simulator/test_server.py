"""The simulator through the REAL google-genai and openai SDKs over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import subprocess
import time

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from annotator.media import ffmpeg_exe
from annotator.prompting import render
from annotator.schemas import (
    CharacterProfile,
    DistilledThinking,
    FirstSegmentPlot,
    NextSegmentPlot,
    Script,
    json_schema,
)
from annotator.schemas.context import PROMPT_FIELDS
from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.server import SimulatorServer
from tests.support.play import (
    ADA_COAT,
    ADA_RAINCOAT,
    BEN_LOOK,
    BEN_NAMING_LINE,
    make_proxy,
    segment_provenance,
    small_screenplay,
)

MODEL = "gemini-3.8-flash"
KEY = "sim-test-key"
_CONTEXT_FIELDS = PROMPT_FIELDS


@pytest.fixture(scope="module")
def play():
    return small_screenplay()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("proxies")
    made = {
        f"seg{i}": make_proxy(folder / f"seg{i}.mp4", segment_provenance(i, a, b)) for i, a, b in _segments()
    }
    made["whole"] = make_proxy(folder / "whole.mp4", segment_provenance(0, 0, 90))
    made["bare"] = make_proxy(folder / "bare.mp4", None)
    return made


def _segments():
    return [(1, 0.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 90.0)]


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play) as running:
        yield running


@pytest.fixture(scope="module")
def gemini(server):
    return genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url, api_version="v1beta")
    )


@pytest.fixture(scope="module")
def chat(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)


def inline(path) -> types.Part:
    return types.Part.from_bytes(data=path.read_bytes(), mime_type="video/mp4")


def ask(client, video: types.Part | None, prompt: str, schema: str | None):
    parts = ([video] if video is not None else []) + [types.Part.from_text(text=prompt)]
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=json_schema(schema) if schema else None
    )
    return client.models.generate_content(
        model=MODEL, contents=[types.Content(role="user", parts=parts)], config=config
    )


def profile(id_: str, name: str | None, appearance: str, **extra) -> dict:
    return CharacterProfile(id=id_, name=name, appearance=appearance, **extra).model_dump(
        include=_CONTEXT_FIELDS, exclude_none=True
    )


def first_prompt(index=1) -> str:
    return render("plot_first", segment_index=index, duration="00:30").text


def next_prompt(known: list[dict], index: int) -> str:
    return render(
        "plot_next",
        segment_index=index,
        duration="00:30",
        character_context=known,
        previous_summary="Ada serves Cleo at the cafe; a stranger sits down.",
    ).text


def by_id(answer) -> dict:
    return {c.id: c for c in answer.characters}


# -- plot ----------------------------------------------------------------------------------------------------
def test_first_segment_plot_from_inline_video(gemini, server, proxies):
    prompt = first_prompt()
    response = ask(gemini, inline(proxies["seg1"]), prompt, "plot-first")
    plot = FirstSegmentPlot.model_validate_json(response.text)

    chars = by_id(plot)
    assert list(chars) == ["char_001", "char_002", "unknown_001"]
    assert chars["char_001"].name == "Ada Marsh" and chars["char_001"].appearance == ADA_COAT
    assert chars["unknown_001"].name == "Unnamed" and chars["unknown_001"].appearance == BEN_LOOK
    assert chars["unknown_001"].first_appear == 12.0  # clip-relative
    assert plot.segment_info.segment_index == 1 and plot.segment_info.main_location == "Corner cafe"
    assert {e.timestamp for e in plot.plot_summary.main_events} >= {3.0, 7.0, 12.0, 16.0, 20.0}
    assert all(set(e.involved_characters) <= set(chars) for e in plot.plot_summary.main_events)
    assert {(r.char1_id, r.char2_id) for r in plot.relationships} >= {("char_001", "char_002")}
    assert plot.audio_elements.background_music == "Soft jazz music on the radio"
    assert {c.id for c in plot.new_characters_summary} == set(chars)

    usage = response.usage_metadata
    video_tokens = 30 * 258 + 30 * 32  # 30 s at 1 fps, with audio
    assert abs(usage.prompt_token_count - (len(prompt) / 4 + video_tokens)) <= 2
    assert abs(usage.candidates_token_count - len(response.text) / 4) <= 1
    assert server.requests[-1].endpoint == "generateContent" and server.requests[-1].stage == "plot_first"
    assert (server.requests[-1].start_s, server.requests[-1].end_s) == (0.0, 30.0)


def test_next_segment_reuses_ids_and_names_the_unknown_man(gemini, proxies):
    known = [
        profile("char_001", "Ada Marsh", ADA_COAT, aliases=["Ada"]),
        profile(
            "char_002", "Cleo Park", "Older woman with a silver braid and round glasses, knitted cardigan"
        ),
        profile("unknown_001", None, BEN_LOOK),
    ]
    response = ask(gemini, inline(proxies["seg2"]), next_prompt(known, 2), "plot-next")
    plot = NextSegmentPlot.model_validate_json(response.text)

    chars = by_id(plot)
    assert chars["char_001"].matched_from == "char_001" and chars["char_001"].match_confidence == "high"
    assert chars["char_002"].matched_from == "char_002"
    # Ben: recognised by looks as unknown_001, named in this clip → a name update with the line that names him
    assert chars["unknown_001"].matched_from == "unknown_001"
    assert [(u.unknown_id, u.name) for u in plot.name_updates] == [("unknown_001", "Ben Okafor")]
    assert BEN_NAMING_LINE in plot.name_updates[0].evidence and "00:20" in plot.name_updates[0].evidence
    # Dev is new: numbered after the highest known id
    assert chars["char_003"].name == "Dev Rao" and chars["char_003"].matched_from is None
    assert [c.id for c in plot.new_characters_summary] == ["char_003"]
    assert chars["char_003"].first_appear == 2.0  # 00:32 in the film, 00:02 in the clip
    assert plot.segment_info.continuity_note and plot.plot_summary.connection_to_previous


def test_costume_change_reintroduces_ada_under_a_new_code(gemini, server, proxies):
    uploaded = gemini.files.upload(
        file=str(proxies["seg3"]), config=types.UploadFileConfig(mime_type="video/mp4")
    )
    assert uploaded.state == types.FileState.ACTIVE
    known = [
        profile("char_001", "Ada Marsh", ADA_COAT, aliases=["Ada"]),
        profile(
            "char_002", "Cleo Park", "Older woman with a silver braid and round glasses, knitted cardigan"
        ),
        profile("unknown_001", "Ben Okafor", BEN_LOOK, status="named"),
        profile("char_003", "Dev Rao", "Bearded man in a white baker's apron"),
    ]
    video = types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
    plot = NextSegmentPlot.model_validate_json(ask(gemini, video, next_prompt(known, 3), "plot-next").text)

    chars = by_id(plot)
    assert "char_001" not in chars  # not recognised: new clothes
    assert chars["char_004"].name == "Ada Marsh" and chars["char_004"].matched_from is None
    assert chars["char_004"].appearance == ADA_RAINCOAT
    assert chars["unknown_001"].matched_from == "unknown_001" and chars["unknown_001"].name == "Ben Okafor"
    assert plot.name_updates == []
    assert [c.id for c in plot.new_characters_summary] == ["char_004"]

    # Once the memory records the raincoat (the CPM merged her), she is recognised again.
    known[0] = profile("char_001", "Ada Marsh", ADA_RAINCOAT, aliases=["Ada"], appearance_history=[ADA_COAT])
    plot = NextSegmentPlot.model_validate_json(ask(gemini, video, next_prompt(known, 3), "plot-next").text)
    assert by_id(plot)["char_001"].matched_from == "char_001"
    assert server.requests[-1].stage == "plot_next" and server.requests[-1].start_s == 60.0


def test_stage_from_headings_without_a_schema(gemini, proxies):
    known = [profile("char_001", "Ada Marsh", ADA_COAT)]
    plot = NextSegmentPlot.model_validate_json(
        ask(gemini, inline(proxies["seg1"]), next_prompt(known, 1), None).text
    )
    assert by_id(plot)["char_001"].matched_from == "char_001"
    first = FirstSegmentPlot.model_validate_json(
        ask(gemini, inline(proxies["seg1"]), "Describe the clip.", None).text
    )
    assert [c.id for c in first.characters] == ["char_001", "char_002", "unknown_001"]


# -- Files API and videoMetadata -------------------------------------------------------------------------------
def test_files_api_and_video_metadata_offsets(gemini, server, proxies):
    uploaded = gemini.files.upload(
        file=str(proxies["whole"]),
        config=types.UploadFileConfig(mime_type="video/mp4", display_name="whole film"),
    )
    assert uploaded.name.startswith("files/") and uploaded.display_name == "whole film"
    assert uploaded.expiration_time is not None and uploaded.size_bytes == proxies["whole"].stat().st_size
    fetched = gemini.files.get(name=uploaded.name)
    assert fetched.state == types.FileState.ACTIVE and fetched.uri == uploaded.uri
    assert uploaded.name in {f.name for f in gemini.files.list()}
    hours = (uploaded.expiration_time - uploaded.create_time).total_seconds() / 3600
    assert 47.9 < hours < 48.1

    part = types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
    part.video_metadata = types.VideoMetadata(start_offset="30s", end_offset="60s")
    plot = FirstSegmentPlot.model_validate_json(ask(gemini, part, first_prompt(2), "plot-first").text)
    chars = {c.name: c for c in plot.characters}
    assert chars["Dev Rao"].first_appear == 2.0  # relative to the start offset
    assert chars["Ben Okafor"].id.startswith("char_")  # named at 00:50, inside 30–60 s
    assert (server.requests[-1].start_s, server.requests[-1].end_s) == (30.0, 60.0)

    part.video_metadata = types.VideoMetadata(start_offset="60s")
    script = Script.model_validate_json(ask(gemini, part, _script_prompt([]), "script").text)
    assert script.events()[0].timestamp == 2.0 and script.meta.duration == "00:00:30"  # normalised

    gemini.files.delete(name=uploaded.name)
    with pytest.raises(genai_errors.ClientError) as err:
        gemini.files.get(name=uploaded.name)
    assert err.value.code == 403 and "may not exist" in err.value.message


def test_processing_period_and_expiry(play, proxies):
    with SimulatorServer(play, file_processing_s=0.4, file_ttl_s=1.2) as slow:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=slow.base_url))  # api v1
        uploaded = client.files.upload(
            file=str(proxies["seg1"]), config=types.UploadFileConfig(mime_type="video/mp4")
        )
        assert uploaded.state == types.FileState.PROCESSING
        video = types.Part.from_uri(file_uri=uploaded.uri, mime_type="video/mp4")
        with pytest.raises(genai_errors.ClientError) as err:
            ask(client, video, first_prompt(), "plot-first")
        assert err.value.code == 400 and err.value.status == "FAILED_PRECONDITION"
        time.sleep(0.5)
        assert client.files.get(name=uploaded.name).state == types.FileState.ACTIVE
        FirstSegmentPlot.model_validate_json(ask(client, video, first_prompt(), "plot-first").text)
        time.sleep(0.8)
        with pytest.raises(genai_errors.ClientError) as err:
            client.files.get(name=uploaded.name)
        assert err.value.code == 403


# -- script ----------------------------------------------------------------------------------------------------
def _script_prompt(profiles: list[dict]) -> str:
    return render(
        "script", duration="00:30", character_profiles=profiles, synopsis="Ada leaves on the train."
    ).text


def test_script_uses_profile_ids_and_clip_relative_times(gemini, play, proxies):
    profiles = [
        profile("char_001", "Ada Marsh", ADA_COAT, aliases=["Ada"]),
        profile(
            "char_002", "Cleo Park", "Older woman with a silver braid and round glasses, knitted cardigan"
        ),
        profile("unknown_001", None, BEN_LOOK),
    ]
    response = ask(gemini, inline(proxies["seg3"]), _script_prompt(profiles), "script")
    script = Script.model_validate_json(response.text)

    events = script.events()
    assert [(e.timestamp, e.character) for e in events] == [
        (2.0, "Environment"),
        (5.0, "unknown_001"),  # by looks: the profile has no name
        (10.0, "char_001"),  # by name, whatever she wears
        (18.0, "char_002"),
        (25.0, "Environment"),
    ]
    assert script.meta.characters == ["unknown_001", "char_001", "char_002"]
    assert [s.location for s in script.script] == ["Train station platform"]
    assert [(h.type, h.time_range) for h in script.high_points] == [("Farewell", [5.0, 15.0])]
    truth = [e.timestamp for e in play.script.events() if 60 <= e.timestamp < 90]
    assert [e.timestamp for e in script.shifted(60).events()] == truth


# -- distillation (OpenAI) ------------------------------------------------------------------------------------
def test_distillation_through_the_openai_sdk(gemini, chat, server, proxies):
    known = [
        profile("char_001", "Ada Marsh", ADA_COAT, aliases=["Ada"]),
        profile(
            "char_002", "Cleo Park", "Older woman with a silver braid and round glasses, knitted cardigan"
        ),
        profile("unknown_001", None, BEN_LOOK),
    ]
    plot = NextSegmentPlot.model_validate_json(
        ask(gemini, inline(proxies["seg2"]), next_prompt(known, 2), "plot-next").text
    )
    profiles = [*known, profile("char_003", "Dev Rao", "Bearded man in a white baker's apron")]
    script = Script.model_validate_json(
        ask(gemini, inline(proxies["seg2"]), _script_prompt(profiles), "script").text
    )
    prompt = render(
        "distill",
        plot=plot.model_dump(
            mode="json",
            include={"segment_info", "characters", "plot_summary", "relationships"},
            exclude_none=True,
        ),
        script=script.model_dump(mode="json", exclude_none=True),
    ).text

    completion = chat.chat.completions.create(
        model="deepseek-v4-pro",
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
    )
    thinking = DistilledThinking.model_validate_json(completion.choices[0].message.content)
    assert [c.name for c in thinking.characters] == ["char_003", "char_002", "unknown_001", "char_001"]
    assert {(r.a, r.b, r.relationship) for r in thinking.relationships} == {
        (r.char1_id, r.char2_id, r.relationship) for r in plot.relationships
    }
    assert thinking.plot_summary and "I see char_001" in thinking.thinking
    reasoning = completion.choices[0].message.model_extra.get("reasoning_content")
    assert reasoning and "thinking" in reasoning
    assert completion.usage.prompt_tokens == -(-len(prompt) // 4)
    assert completion.usage.completion_tokens > 0
    assert server.requests[-1].endpoint == "chat.completions" and server.requests[-1].stage == "distill"
    assert server.request_count("distill") >= 1


def test_openai_with_a_video_data_url_answers_the_plot_stage(chat, proxies):
    data = base64.b64encode(proxies["seg1"].read_bytes()).decode()
    video = {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}
    completion = chat.chat.completions.create(
        model="v2s-sim",
        messages=[{"role": "user", "content": [video, {"type": "text", "text": first_prompt()}]}],
        response_format={"type": "json_object"},
    )
    plot = FirstSegmentPlot.model_validate_json(completion.choices[0].message.content)
    assert [c.id for c in plot.characters] == ["char_001", "char_002", "unknown_001"]
    assert completion.usage.prompt_tokens > 30 * (258 + 32)
    assert getattr(completion.choices[0].message, "reasoning_content", None) is None


def test_openai_generic_answer_and_models(chat):
    completion = chat.chat.completions.create(
        model="deepseek-flash", messages=[{"role": "user", "content": "hello"}]
    )
    assert "v2s simulator" in completion.choices[0].message.content
    assert "deepseek-flash" in {m.id for m in chat.models.list()}


# -- clear errors ------------------------------------------------------------------------------------------------
def test_missing_gemini_key_is_a_403(server, proxies):
    keyless = genai.Client(
        api_key="unused",
        http_options=types.HttpOptions(base_url=server.base_url, headers={"x-goog-api-key": ""}),
    )
    with pytest.raises(genai_errors.ClientError) as err:
        ask(keyless, inline(proxies["seg1"]), first_prompt(), "plot-first")
    assert err.value.code == 403 and err.value.status == "PERMISSION_DENIED"
    assert "API Key" in err.value.message


def test_missing_openai_key_is_a_401(server):
    keyless = openai.OpenAI(
        base_url=server.base_url + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"Authorization": ""},
    )
    with pytest.raises(openai.AuthenticationError) as err:
        keyless.chat.completions.create(model="deepseek-flash", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401 and "API key" in err.value.message


def test_wrong_keys_are_refused_when_the_server_has_a_key_list(play, proxies):
    with SimulatorServer(play, api_keys={"right"}) as strict:
        wrong = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=strict.base_url))
        with pytest.raises(genai_errors.ClientError) as err:
            ask(wrong, inline(proxies["seg1"]), first_prompt(), "plot-first")
        assert err.value.code == 400 and "API key not valid" in err.value.message
        right = genai.Client(api_key="right", http_options=types.HttpOptions(base_url=strict.base_url))
        FirstSegmentPlot.model_validate_json(
            ask(right, inline(proxies["seg1"]), first_prompt(), "plot-first").text
        )
        bad = openai.OpenAI(base_url=strict.base_url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_a_video_without_the_film_mark_or_no_video_is_invalid_argument(gemini, proxies, tmp_path):
    """The simulator reads the pictures: a bare proxy of the film (no tag) is answered, a video that is not the
    film is refused, naming what it lacks."""
    FirstSegmentPlot.model_validate_json(
        ask(gemini, inline(proxies["bare"]), first_prompt(), "plot-first").text
    )
    pattern = tmp_path / "pattern.mp4"
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=5:d=2"]
    subprocess.run(
        [*cmd, "-metadata", f"comment={segment_provenance(1, 0, 30).to_tag()}", str(pattern)], check=True
    )
    with pytest.raises(genai_errors.ClientError) as err:
        ask(gemini, inline(pattern), first_prompt(), "plot-first")
    assert err.value.code == 400 and err.value.status == "INVALID_ARGUMENT"
    assert "film mark" in err.value.message
    with pytest.raises(genai_errors.ClientError) as err:
        ask(gemini, None, first_prompt(), "plot-first")
    assert err.value.code == 400 and "needs the segment's video" in err.value.message


# -- the behaviours hook ----------------------------------------------------------------------------------------
class _FirstCallFails(Behaviours):
    def before_answer(self, request: RequestInfo) -> Fault | None:
        if request.number == 1:
            return Fault(status=429, message="Resource has been exhausted", retry_after_s=1.5)
        if request.number == 2:
            return Fault(answer_text='{"segment_info": {"segment_index": 1,')
        return None


def test_behaviours_hook_injects_faults_in_each_api_format(play, proxies):
    with SimulatorServer(play, behaviours=_FirstCallFails()) as faulty:
        client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=faulty.base_url))
        with pytest.raises(genai_errors.ClientError) as err:
            ask(client, inline(proxies["seg1"]), first_prompt(), "plot-first")
        assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
        assert err.value.response.headers["retry-after"] == "2"
        assert ask(client, inline(proxies["seg1"]), first_prompt(), "plot-first").text.endswith(",")
        FirstSegmentPlot.model_validate_json(
            ask(client, inline(proxies["seg1"]), first_prompt(), "plot-first").text
        )
        assert [r.status for r in faulty.requests] == [429, 200, 200]
