"""The simulator's batch APIs through the REAL google-genai and openai SDKs over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time

import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from annotator.prompting import render
from annotator.schemas import FirstSegmentPlot, json_schema
from annotator.simulator.batch_store import BatchPlay
from annotator.simulator.openai_batches import openai_batches_from_env
from annotator.simulator.scenarios import FaultRule, Scenario
from annotator.simulator.server import SimulatorServer
from tests.support.play import make_proxy, segment_provenance, small_screenplay

MODEL = "gemini-3.8-flash"
KEY = "sim-test-key"
FAST = BatchPlay(pending_s=0.1, running_s=0.15)
DONE = {
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_FAILED,
    types.JobState.JOB_STATE_CANCELLED,
    types.JobState.JOB_STATE_EXPIRED,
}
SEGMENTS = [(1, 0.0, 30.0), (2, 30.0, 60.0), (3, 60.0, 90.0)]


@pytest.fixture(scope="module")
def play():
    return small_screenplay()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch-proxies")
    return {i: make_proxy(folder / f"seg{i}.mp4", segment_provenance(i, a, b)) for i, a, b in SEGMENTS}


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play, batches=FAST) as running:
        yield running


@pytest.fixture(scope="module")
def faulty(play):
    """Every call about segment 2 fails with a 500: one item of a batch fails, the others succeed."""
    rules = Scenario(rules=[FaultRule(kind="server_error", segment=2)])
    with SimulatorServer(play, batches=FAST, behaviours=rules) as running:
        yield running


@pytest.fixture(scope="module")
def slow(play):
    """Batches that never finish on their own: they expire after 0.6 s, unless cancelled first."""
    with SimulatorServer(play, batches=BatchPlay(pending_s=0.2, running_s=60, expire_after_s=0.6)) as running:
        yield running


def gemini(server, version="v1beta") -> genai.Client:
    return genai.Client(
        api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url, api_version=version)
    )


def chat(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=KEY, max_retries=0)


def prompt(index: int) -> str:
    return render("plot_first", segment_index=index, duration="00:30").text


def config() -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=json_schema("plot-first")
    )


def contents(video: types.Part, index: int) -> list[types.Content]:
    return [types.Content(role="user", parts=[video, types.Part.from_text(text=prompt(index))])]


def inline(path) -> types.Part:
    return types.Part.from_bytes(data=path.read_bytes(), mime_type="video/mp4")


def inlined(proxies, *segments: int) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(
            contents=contents(inline(proxies[i]), i), config=config(), metadata={"key": f"seg{i}"}
        )
        for i in segments
    ]


def wait(client: genai.Client, name: str) -> types.BatchJob:
    deadline = time.monotonic() + 10
    while (job := client.batches.get(name=name)).state not in DONE:
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.05)
    return job


def wait_openai(client: openai.OpenAI, batch_id: str):
    deadline = time.monotonic() + 10
    while (batch := client.batches.retrieve(batch_id)).status not in (
        "completed",
        "failed",
        "expired",
        "cancelled",
    ):
        assert time.monotonic() < deadline, f"{batch_id} still {batch.status}"
        time.sleep(0.05)
    return batch


def records(server, endpoint: str) -> list:
    return [r for r in server.requests if r.endpoint == endpoint]


# -- Gemini ----------------------------------------------------------------------------------------------------
def test_inline_batch_answers_like_generate_content(server, proxies):
    client = gemini(server)
    cache = client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=[types.Content(role="user", parts=[inline(proxies[3])])]
        ),
    )
    from_cache = types.InlinedRequest(
        contents=[types.Content(role="user", parts=[types.Part.from_text(text=prompt(3))])],
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=json_schema("plot-first"),
            cached_content=cache.name,
            service_tier="flex",  # ignored: batch items are never flex
        ),
        metadata={"key": "seg3-cached"},
    )
    created, items = server.batches.created, server.request_count()
    job = client.batches.create(
        model=MODEL, src=[*inlined(proxies, 1, 2), from_cache], config={"display_name": "inline-three"}
    )
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "inline-three" and job.model == f"models/{MODEL}" and job.dest is None
    assert server.batches.created == created + 1
    assert server.batches.get(job.name).keys == ["seg1", "seg2", "seg3-cached"]

    done = wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time is not None
    answers = done.dest.inlined_responses
    assert [a.metadata for a in answers] == [{"key": "seg1"}, {"key": "seg2"}, {"key": "seg3-cached"}]
    direct = [
        client.models.generate_content(model=MODEL, contents=contents(inline(proxies[i]), i), config=config())
        for i in (1, 2)
    ]
    direct.append(
        client.models.generate_content(
            model=MODEL,
            contents=[types.Content(role="user", parts=[types.Part.from_text(text=prompt(3))])],
            config=types.GenerateContentConfig(
                response_mime_type="application/json",
                response_json_schema=json_schema("plot-first"),
                cached_content=cache.name,
            ),
        )
    )
    for i, (answer, same) in enumerate(zip(answers, direct, strict=True), start=1):
        assert answer.error is None
        plot = FirstSegmentPlot.model_validate_json(answer.response.text)
        assert plot.segment_info.segment_index == i
        assert answer.response.text == same.text
        assert (
            answer.response.usage_metadata == same.usage_metadata
        )  # the same numbers, trafficType ON_DEMAND
    assert answers[2].response.usage_metadata.cached_content_token_count > 0

    items_done = [r for r in records(server, "batch.generateContent")][-3:]
    assert [(r.stage, r.status, r.model) for r in items_done] == [("plot_first", 200, MODEL)] * 3
    assert [(r.start_s, r.end_s) for r in items_done] == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]
    assert server.request_count() == items + 3 + 3  # the batch's items and the three direct calls
    assert {"batches.create", "batches.get"} <= {r.endpoint for r in server.requests}


def test_file_batch_results_are_a_downloadable_file(server, proxies, tmp_path):
    client = gemini(server)
    video = client.files.upload(file=proxies[1], config=types.UploadFileConfig(mime_type="video/mp4"))
    request = {
        "contents": [
            {
                "role": "user",
                "parts": [{"fileData": {"fileUri": video.uri, "mimeType": "video/mp4"}}, {"text": prompt(1)}],
            }
        ],
        "generationConfig": {
            "responseMimeType": "application/json",
            "responseJsonSchema": json_schema("plot-first"),
        },
    }
    generic = {"contents": [{"role": "user", "parts": [{"text": "Say hello — café"}]}]}
    lines = [{"key": "plot-1", "request": request}, {"key": "hello", "request": generic}]
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    uploaded = client.files.upload(file=path, config=types.UploadFileConfig(mime_type="application/jsonl"))

    job = client.batches.create(model=MODEL, src=uploaded.name)
    assert server.batches.get(job.name).keys == ["plot-1", "hello"]
    done = wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.dest.inlined_responses is None
    results = done.dest.file_name
    assert results.startswith("files/")
    resource = client.files.get(name=results)
    assert resource.source == types.FileSource.GENERATED and resource.download_uri
    data = client.files.download(file=results)
    got = [json.loads(line) for line in data.decode().splitlines()]
    assert [g["key"] for g in got] == ["plot-1", "hello"] and all("response" in g for g in got)
    text = got[0]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert FirstSegmentPlot.model_validate_json(text).segment_info.segment_index == 1
    same = client.models.generate_content(
        model=MODEL,
        contents=contents(types.Part.from_uri(file_uri=video.uri, mime_type="video/mp4"), 1),
        config=config(),
    )
    assert got[0]["response"]["usageMetadata"]["promptTokenCount"] == same.usage_metadata.prompt_token_count
    assert records(server, "files.download")[-1].status == 200

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(lines[1]) + "\n" + '{"key": "x", "request": {"contents": []}}\n')
    bad_file = client.files.upload(file=bad, config=types.UploadFileConfig(mime_type="application/jsonl"))
    with pytest.raises(genai_errors.ClientError) as refused:
        client.batches.create(model=MODEL, src=bad_file.name)
    assert refused.value.code == 400 and "line 2" in refused.value.message


def test_refusals_list_and_delete(server, proxies):
    client = gemini(server)
    with pytest.raises(genai_errors.ClientError) as unknown:
        client.batches.create(model="no-such-model", src=inlined(proxies, 1))
    assert unknown.value.code == 404
    with pytest.raises(genai_errors.ClientError) as missing:
        client.batches.get(name="batches/doesnotexist")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
    assert missing.value.message == "Requested entity was not found."

    job = client.batches.create(model=MODEL, src=inlined(proxies, 2), config={"display_name": "find-me"})
    found = [j for j in client.batches.list(config={"page_size": 1}) if j.display_name == "find-me"]
    assert [j.name for j in found] == [job.name]
    client.batches.delete(name=job.name)
    assert server.batches.get(job.name) is None and server.batches.deleted >= 1
    assert "batches.list" in {r.endpoint for r in server.requests}
    # the Gemini Files API still lives at /v1/files beside OpenAI's
    assert gemini(server, "v1").files.list() is not None


def test_one_failing_item_leaves_the_others_answered(faulty, proxies):
    client = gemini(faulty)
    job = client.batches.create(model=MODEL, src=inlined(proxies, 1, 2, 3))
    done = wait(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    first, second, third = done.dest.inlined_responses
    assert first.response.text and third.response.text and second.response is None
    assert second.error.code == 500 and second.error.message == "An internal error has occurred."
    assert second.metadata == {"key": "seg2"}
    batch = faulty.batches.get(job.name)
    assert (batch.succeeded, batch.failed) == (2, 1)
    assert [r.status for r in records(faulty, "batch.generateContent")] == [200, 500, 200]


def test_cancel_and_expiry(slow, proxies):
    client = gemini(slow)
    job = client.batches.create(model=MODEL, src=inlined(proxies, 1))
    client.batches.cancel(name=job.name)
    cancelled = client.batches.get(name=job.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.dest is None
    assert slow.batches.cancelled == 1

    late = client.batches.create(model=MODEL, src=inlined(proxies, 2))
    assert client.batches.get(name=late.name).state == types.JobState.JOB_STATE_PENDING
    time.sleep(0.3)
    assert client.batches.get(name=late.name).state == types.JobState.JOB_STATE_RUNNING
    time.sleep(0.4)
    expired = client.batches.get(name=late.name)
    assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None
    assert records(slow, "batch.generateContent") == [] and slow.request_count() == 0


# -- OpenAI ----------------------------------------------------------------------------------------------------
def _chat_line(custom_id: str, body: dict) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _video_body(path, index: int) -> dict:
    data = base64.b64encode(path.read_bytes()).decode()
    video = {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}
    text = {"type": "text", "text": prompt(index)}
    return {"model": "v2s-sim", "messages": [{"role": "user", "content": [video, text]}]}


def _upload(client: openai.OpenAI, lines: list[dict]):
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    return client.files.create(file=("batch.jsonl", data), purpose="batch")


def test_openai_batch_output_file(server, proxies):
    client = chat(server)
    hello = {"model": "deepseek-flash", "messages": [{"role": "user", "content": "hello — ünïcode"}]}
    lines = [_chat_line("plot-1", _video_body(proxies[1], 1)), _chat_line("hello", hello)]
    uploaded = _upload(client, lines)
    assert uploaded.purpose == "batch" and uploaded.bytes > 0 and uploaded.id.startswith("file-")
    assert client.files.retrieve(uploaded.id).filename == "batch.jsonl"

    created = server.batches.created
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "test"},
    )
    assert (
        batch.status == "validating" and batch.id.startswith("batch_") and batch.metadata == {"run": "test"}
    )
    assert server.batches.created == created + 1 and server.batches.get(batch.id).keys == ["plot-1", "hello"]
    done = wait_openai(client, batch.id)
    assert done.status == "completed" and done.error_file_id is None and done.completed_at
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (2, 2, 0)
    got = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert [g["custom_id"] for g in got] == ["plot-1", "hello"]
    assert all(g["response"]["status_code"] == 200 and g["error"] is None for g in got)
    plot = FirstSegmentPlot.model_validate_json(
        got[0]["response"]["body"]["choices"][0]["message"]["content"]
    )
    assert plot.segment_info.segment_index == 1
    same = client.chat.completions.create(**hello)
    assert got[1]["response"]["body"]["usage"] == same.usage.model_dump(exclude_none=True)
    assert [r.stage for r in records(server, "batch.chat.completions")][-2:] == ["plot_first", "generic"]

    assert batch.id in {b.id for b in client.batches.list(limit=1)}  # paged with `after`
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, [lines[1], {**lines[1], "url": "/v1/embeddings", "custom_id": "x"}])
    assert "line 2" in refused.value.message


def test_openai_partial_failure_and_cancel(faulty, slow, proxies):
    client = chat(faulty)
    lines = [_chat_line(f"plot-{i}", _video_body(proxies[i], i)) for i in (1, 2)]
    batch = client.batches.create(
        input_file_id=_upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_openai(client, batch.id)
    assert done.status == "completed" and (done.request_counts.completed, done.request_counts.failed) == (
        1,
        1,
    )
    ok = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    failed = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [x["custom_id"] for x in ok] == ["plot-1"] and [x["custom_id"] for x in failed] == ["plot-2"]
    assert failed[0]["response"]["status_code"] == 500
    assert failed[0]["response"]["body"]["error"]["type"] == "server_error"

    client = chat(slow)
    batch = client.batches.create(
        input_file_id=_upload(client, lines[:1]).id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.cancel(batch.id).status == "cancelling"
    cancelled = client.batches.retrieve(batch.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at and cancelled.output_file_id is None


def test_expired_and_cancelled_openai_batches_keep_their_finished_items(play, proxies):
    """OpenAI: an expired or cancelled batch has "partial results (if any) available in the output file";
    Gemini's has no output. Items finish one after another, `item_s` each, so what is kept is decided by the
    play, not by when the test looks."""
    lines = [_chat_line(f"plot-{i}", _video_body(proxies[i], i)) for i in (1, 2, 3)]
    # items finish at 0.2, 0.4 and 0.6 s after creation; the batch expires at 0.5 s: two are kept
    timing = BatchPlay(pending_s=0.0, running_s=0.0, item_s=0.2, expire_after_s=0.5)
    with SimulatorServer(play, batches=timing) as late:
        client = chat(late)
        batch = client.batches.create(
            input_file_id=_upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        expired = wait_openai(client, batch.id)
        assert expired.status == "expired" and expired.expired_at and expired.error_file_id is None
        assert (expired.request_counts.completed, expired.request_counts.failed) == (2, 0)
        kept = [json.loads(x) for x in client.files.content(expired.output_file_id).text.splitlines()]
        assert [k["custom_id"] for k in kept] == ["plot-1", "plot-2"]
        assert all(k["response"]["status_code"] == 200 for k in kept)
        assert late.request_count() == 2  # the third was never answered (nor billed)

        # a smaller batch finishes in time: one item, done 0.2 s after creation
        again = client.batches.create(
            input_file_id=_upload(client, lines[2:]).id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        assert wait_openai(client, again.id).status == "completed"

        gem = gemini(late)
        job = gem.batches.create(model=MODEL, src=inlined(proxies, 1, 2, 3))
        assert wait(gem, job.name).state == types.JobState.JOB_STATE_EXPIRED
        assert gem.batches.get(name=job.name).dest is None and late.request_count() == 3

    # cancelled while running, after its first item finished (three items spread over 60 s: 20 s each)
    with SimulatorServer(play, batches=BatchPlay(pending_s=0.0, running_s=60)) as running:
        client = chat(running)
        batch = client.batches.create(
            input_file_id=_upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        running.batches.get(batch.id).created -= 25  # as if created 25 s ago: the first item (20 s) is done
        assert client.batches.cancel(batch.id).status == "cancelling"
        cancelled = client.batches.retrieve(batch.id)
        assert cancelled.status == "cancelled" and cancelled.request_counts.completed == 1
        kept = [json.loads(x) for x in client.files.content(cancelled.output_file_id).text.splitlines()]
        assert [k["custom_id"] for k in kept] == ["plot-1"]


def test_openai_batches_switched_off_answer_404_like_deepseek(play):
    with SimulatorServer(play, openai_batches=False) as off:
        client = chat(off)
        with pytest.raises(openai.NotFoundError):
            client.batches.list()
        with pytest.raises(openai.NotFoundError):
            client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
        assert client.chat.completions.create(
            model="deepseek-flash", messages=[{"role": "user", "content": "hi"}]
        ).choices
        assert gemini(off, "v1").files.list() is not None  # Gemini's /v1/files is not affected


def test_timing_and_switch_from_the_environment():
    env = {
        "V2S_SIM_BATCH_PENDING_S": "1.5",
        "V2S_SIM_BATCH_RUNNING_S": "0",
        "V2S_SIM_BATCH_EXPIRE_AFTER_S": "9",
    }
    assert BatchPlay.from_env(env) == BatchPlay(pending_s=1.5, running_s=0.0, expire_after_s=9.0)
    assert BatchPlay.from_env({}) == BatchPlay()
    with pytest.raises(ValueError, match="V2S_SIM_BATCH_RUNNING_S"):
        BatchPlay.from_env({"V2S_SIM_BATCH_RUNNING_S": "soon"})
    assert openai_batches_from_env({}) is True
    assert openai_batches_from_env({"V2S_SIM_OPENAI_BATCHES": "0"}) is False
