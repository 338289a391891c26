"""The LLM judge over real HTTP: the openai SDK against a tiny OpenAI-compatible stub on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from evaluation import evaluate
from evaluation.judges import JudgeError, LLMJudge, get_judge, parse_json_object, similarity_prompt

SECRET = "sk-test-SECRET-0123456789"


class Stub:
    """Answers the judge's batched JSON: similarity = 0.8 unless the prediction says "wrong" (0.0)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.drop_first_id = False
        self.fail = False
        self.lock = threading.Lock()

    def answer(self, body: dict) -> dict:
        payload = json.loads(body["messages"][-1]["content"])
        if payload["task"] == "similarity":
            pairs = payload["pairs"]
            if self.drop_first_id:
                self.drop_first_id = False
                pairs = pairs[1:]
            results = [
                {"id": p["id"], "similarity": 0.0 if "wrong" in p["pred"] else 0.8, "reason": "stub"}
                for p in pairs
            ]
            return {"results": results}
        names = payload["gt_names"] + payload["pred_names"]
        categories = {n: ("plural" if n.endswith("s") else "proper") for n in names}
        pairs = [{"pred": "Johnny", "gt": "John"}] if "Johnny" in payload["pred_names"] else []
        return {"categories": categories, "pairs": pairs}


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if state.fail:  # an unfriendly server that echoes the credentials back
                data = json.dumps({"error": {"message": f"bad key {self.headers['Authorization']}"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            content = json.dumps(state.answer(body))
            reply = {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"```json\n{content}\n```"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def make_judge(url: str, cache_dir, **kwargs) -> LLMJudge:
    return LLMJudge(base_url=url, api_key=SECRET, model="judge-model", cache_dir=cache_dir, **kwargs)


def test_batches_and_disk_cache(stub, tmp_path, caplog):
    state, url = stub
    caplog.set_level(logging.DEBUG)
    pairs = [(f"gt {i}", f"pred {i}") for i in range(7)] + [
        ("same", "Same!"),
        ("gt 0", "pred 0"),
        ("a", "wrong"),
    ]
    judge = make_judge(url, tmp_path / "cache", batch_size=3)
    scores = judge.similarity("action", pairs)
    assert scores == [0.8] * 7 + [1.0, 0.8, 0.0]
    # 8 distinct pairs need the model (the equal pair never goes; the repeated one goes once) → 3 + 3 + 2
    assert len(state.requests) == 3 == judge.requests
    sent = sorted(len(json.loads(r["messages"][-1]["content"])["pairs"]) for r in state.requests)
    assert sent == [2, 3, 3]
    first = state.requests[0]
    assert first["model"] == "judge-model" and first["temperature"] == 0
    assert first["messages"][0]["content"] == similarity_prompt("action")
    assert state.headers[0]["authorization"] == f"Bearer {SECRET}"  # the real SDK sent it over HTTP

    again = make_judge(url, tmp_path / "cache", batch_size=3)
    assert again.similarity("action", pairs) == scores
    assert len(state.requests) == 3 and again.requests == 0  # everything came from the disk cache
    # another field or another model is another cache entry
    assert make_judge(url, tmp_path / "cache").similarity("expression", pairs[:1]) == [0.8]
    assert len(state.requests) == 4

    assert SECRET not in caplog.text and SECRET not in repr(judge)


def test_missing_ids_are_asked_again(stub, tmp_path):
    state, url = stub
    state.drop_first_id = True
    judge = make_judge(url, tmp_path, batch_size=10)
    assert judge.similarity("mood", [("tense", "uneasy"), ("calm", "wrong")]) == [0.8, 0.0]
    assert len(state.requests) == 2
    assert [p["id"] for p in json.loads(state.requests[1]["messages"][-1]["content"])["pairs"]] == [0]


def test_evaluate_with_the_llm_judge_batches_per_field_and_reuses_the_cache(stub, tmp_path):
    state, url = stub
    gt = {
        "script": [
            {
                "scene_id": 1,
                "location": "kitchen",
                "mood": "calm",
                "start_timestamp": 0,
                "end_timestamp": 30,
                "events": [
                    {"timestamp": 1, "character": "John", "action": "cooks", "expression": "happy"},
                    {"timestamp": 9, "character": "Mary", "action": "reads", "audio_cue": "rain"},
                ],
            }
        ]
    }
    pred = {
        "script": [
            {
                "scene_id": 1,
                "location": "a kitchen",
                "mood": "calm",
                "start_timestamp": 0,
                "end_timestamp": 30,
                "events": [
                    {"timestamp": 1, "character": "Johnny", "action": "makes food", "expression": "wrong"},
                    {"timestamp": 9, "character": "Mary", "action": "reads a book", "audio_cue": "rainfall"},
                ],
            }
        ]
    }
    judge = make_judge(url, tmp_path / "c", batch_size=20)
    result = evaluate(gt, pred, judge=judge)
    # "Johnny" → "John" only because the model paired them (two proper names)
    assert result.characters.mapping == {"Johnny": "John", "Mary": "Mary"}
    assert result.events.fields["character"].f1 == 1.0
    # action: both GT items against both pred items (one group per event: 1 + 1 pairs) at 0.8
    assert result.events.fields["action"].score == pytest.approx(1.6)
    assert result.events.fields["expression"].score == 0.0  # "wrong"
    assert result.events.fields["audio_cue"].score == pytest.approx(0.8)
    assert result.scenes.fields["location"].score == pytest.approx(0.8)
    assert result.scenes.fields["mood"].score == 1.0  # equal: never asked
    tasks = [json.loads(r["messages"][-1]["content"]) for r in state.requests]
    asked = sorted(t.get("field", "characters") for t in tasks)
    assert asked == ["action", "audio_cue", "characters", "expression", "location"]  # one request per field
    n = len(state.requests)
    evaluate(gt, pred, judge=make_judge(url, tmp_path / "c"))
    assert len(state.requests) == n  # second run: all from the cache


def test_settings_from_the_environment(stub, tmp_path, monkeypatch):
    state, url = stub
    monkeypatch.setenv("V2S_JUDGE_BASE_URL", url)
    monkeypatch.setenv("V2S_JUDGE_API_KEY", SECRET)
    monkeypatch.setenv("V2S_JUDGE_MODEL", "env-model")
    monkeypatch.setenv("V2S_JUDGE_CACHE_DIR", str(tmp_path))
    judge = get_judge("llm")
    assert judge.similarity("action", [("x", "y")]) == [0.8]
    assert state.requests[0]["model"] == "env-model"
    assert list(tmp_path.rglob("*.json"))


def test_missing_settings_and_bad_answers(monkeypatch, tmp_path):
    for name in ("V2S_JUDGE_BASE_URL", "V2S_JUDGE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(JudgeError, match="V2S_JUDGE_API_KEY"):
        LLMJudge(cache_dir=tmp_path)
    assert parse_json_object('Sure! {"results": []} hope that helps') == {"results": []}
    with pytest.raises(JudgeError):
        parse_json_object("no json here")
    with pytest.raises(ValueError):
        get_judge("oracle")


def test_injected_client(stub, tmp_path):
    import openai

    state, url = stub
    client = openai.OpenAI(base_url=url, api_key=SECRET, max_retries=0)
    judge = LLMJudge(client, model="injected", cache_dir=tmp_path, json_mode=False)
    assert judge.similarity("audio_cue", [("rain", "rainfall"), ("rain", "wrong")]) == [0.8, 0.0]
    assert len(state.requests) == 1
    assert state.requests[0]["model"] == "injected" and "response_format" not in state.requests[0]


def test_request_errors_become_judge_errors_without_the_key(stub, tmp_path, caplog):
    state, url = stub
    state.fail = True
    caplog.set_level(logging.DEBUG)
    judge = make_judge(url, tmp_path, max_retries=0)
    with pytest.raises(JudgeError) as err:
        judge.similarity("action", [("a", "b")])
    assert "AuthenticationError" in str(err.value) and "***" in str(err.value)
    assert SECRET not in str(err.value) and SECRET not in caplog.text


def test_the_judge_settings_come_from_the_environment_once(monkeypatch, tmp_path):
    from evaluation.judges.llm import JudgeSettings

    monkeypatch.setenv("V2S_JUDGE_MODEL", "qwen2.5-7b-instruct")
    monkeypatch.setenv("V2S_JUDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    settings = JudgeSettings()
    assert (settings.model, settings.cache_dir) == ("qwen2.5-7b-instruct", tmp_path)
    assert settings.api_key.get_secret_value() == "sk-fallback" and "sk-fallback" not in repr(settings)
    monkeypatch.setenv("V2S_JUDGE_API_KEY", "sk-judge")  # the judge's own key wins
    assert JudgeSettings().api_key.get_secret_value() == "sk-judge"
