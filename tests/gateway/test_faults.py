"""Every simulator fault through the REAL google-genai / openai SDKs over HTTP, with the real Gateway, and the
engine's reaction to each: retried and succeeded, or the stage failed with a specific outcome and reason."""

from __future__ import annotations

import pytest

from annotator.gateway import Gateway, Media
from annotator.gateway.base import ModelRequest, RetryableError
from annotator.gateway.gemini import GeminiBackend
from annotator.gateway.openai_compat import OpenAICompatBackend
from annotator.schemas import FirstSegmentPlot
from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.scenarios import FaultRule, Scenario, parse_flag
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, ScriptWriter, SegmentInput
from tests.support.films import film_copy
from tests.support.gateway import KEY, MODELS, fast_scenario, settings_for
from tests.support.play import make_proxy, segment_provenance
from workers.storage import file_sha256

pytestmark = pytest.mark.shared_ray  # its jobs run on the session's one Ray (tests/support/ray_session.py)


def ask_plot(server: SimulatorServer, api: str, proxy, **overrides):
    gateway = Gateway(settings_for(server, **overrides))
    segment = SegmentInput(
        index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
    )
    return PlotReasoner(gateway, backend=api, model=MODELS[api]).reason(segment, None)


def statuses(server: SimulatorServer) -> list[int]:
    return [r.status for r in server.requests if r.endpoint in ("generateContent", "chat.completions")]


# case: (fault flag on the plot stage, statuses of the model calls the simulator answered)
RECOVERED = {
    "429 twice": ("rate_limit@plot:2", [429, 429, 200]),
    "500 once": ("server_error@plot:1", [500, 200]),
    "503 once": ("unavailable@plot:1", [503, 200]),
    "malformed JSON once (repair turn)": ("malformed_json@plot:1", [200, 200]),
    "schema-violating JSON once (repair turn)": ("schema_violation@plot:1", [200, 200]),
    "truncated once (repair turn)": ("truncated_json@plot:1", [200, 200]),
    "empty once": ("empty@plot:1", [200, 200]),
}


# case: (fault flag on the plot stage, model calls made, stored outcome, words in the stored error)
FAILED = {
    "429 always": ("rate_limit@plot", 3, "rate_limited", ["429", "gave up after 3 attempts"]),
    "500 always": ("server_error@plot", 3, "server_error", ["500", "gave up after 3 attempts"]),
    "503 always": ("unavailable@plot", 3, "server_error", ["503"]),
    "malformed JSON always": ("malformed_json@plot", 2, "invalid_output", ["never matched the schema"]),
    "schema violation always": ("schema_violation@plot", 2, "invalid_output", ["Field required"]),
    "truncated always": ("truncated_json@plot", 2, "truncated", ["cut off"]),
    "empty always": ("empty@plot", 3, "empty", ["empty", "gave up after 3 attempts"]),
    "blocked candidate": ("blocked@plot", 1, "blocked", []),
    "blocked prompt": ("prompt_blocked@plot", 1, "blocked", []),
}


@pytest.mark.parametrize("api", ["gemini", "openai"])
@pytest.mark.parametrize("case", list(RECOVERED))
def test_transient_faults_are_retried_or_repaired_and_succeed(play, proxy, api, case):
    flag, expected = RECOVERED[case]
    scenario = fast_scenario(flag)
    with SimulatorServer(play, behaviours=scenario) as server:
        result = ask_plot(server, api, proxy)
        assert result.ok, result.error
        assert isinstance(result.value, FirstSegmentPlot)
        assert result.outcome == "done" and result.error is None
        assert statuses(server) == expected
        assert scenario.played() == [len(expected) - 1]


@pytest.mark.parametrize("api", ["gemini", "openai"])
@pytest.mark.parametrize("case", list(FAILED))
def test_lasting_faults_fail_the_stage_with_a_specific_reason(play, proxy, api, case):
    flag, calls, outcome, words = FAILED[case]
    with SimulatorServer(play, behaviours=fast_scenario(flag)) as server:
        result = ask_plot(server, api, proxy)
        assert not result.ok
        assert result.outcome == outcome, result.error
        for word in words:
            assert word in result.error
        assert len(statuses(server)) == calls
    if outcome == "blocked":
        expected = "SAFETY" if api == "gemini" else "content_filter"
        assert expected in result.error


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_a_timeout_is_retried_then_reported_as_timeout(play, proxy, api):
    once = Scenario(rules=[FaultRule(kind="timeout", stage="plot", times=1, delay_s=2.0)])
    with SimulatorServer(play, behaviours=once) as server:
        result = ask_plot(server, api, proxy, request_timeout_s=0.5)
        assert result.ok, result.error
        assert once.played() == [1]
    always = Scenario(rules=[FaultRule(kind="timeout", stage="plot", delay_s=1.0)])
    with SimulatorServer(play, behaviours=always) as server:
        result = ask_plot(server, api, proxy, request_timeout_s=0.3, max_attempts=2)
        assert result.outcome == "timeout" and "timed out" in result.error
        assert always.played() == [2]


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_a_slow_answer_within_the_timeout_is_simply_awaited(play, proxy, api):
    slow = Scenario(rules=[FaultRule(kind="slow", stage="plot", delay_s=0.3)])
    with SimulatorServer(play, behaviours=slow) as server:
        result = ask_plot(server, api, proxy, request_timeout_s=5.0)
        assert result.ok and statuses(server) == [200]


@pytest.mark.parametrize("api", ["gemini", "openai"])
def test_retry_after_reaches_the_retry_layer(play, proxy, api):
    """The server's Retry-After (seconds) arrives through the real SDK on the error the retry layer waits on."""
    scenario = Scenario(rules=[FaultRule(kind="rate_limit", times=1, retry_after_s=7)])
    with SimulatorServer(play, behaviours=scenario) as server:
        settings = settings_for(server)
        backend = GeminiBackend(settings) if api == "gemini" else OpenAICompatBackend(settings)
        request = ModelRequest(
            stage="distill", model=MODELS[api], prompt="Say hello as JSON.", prompt_version="t"
        )
        with pytest.raises(RetryableError) as err:
            backend.generate(request)
        assert err.value.retry_after_s == 7 and err.value.outcome == "rate_limited"


def test_files_stuck_in_processing_fail_the_stage_after_a_bounded_wait(play, proxy):
    scenario = Scenario.from_flags(["files_processing"])
    with SimulatorServer(play, behaviours=scenario) as server:
        result = ask_plot(
            server,
            "gemini",
            proxy,
            inline_media_max_bytes=0,  # every proxy goes through the Files API
            file_active_timeout_s=0.5,
            file_poll_interval_s=0.1,
        )
        assert result.outcome == "timeout"
        assert "stayed PROCESSING" in result.error and "V2S_FILE_ACTIVE_TIMEOUT_S" in result.error
        assert statuses(server) == []  # never sent a request the API would refuse
        assert [r.endpoint for r in server.requests].count("files.upload") == 1


def test_uploaded_files_that_become_active_are_used(play, proxy):
    with SimulatorServer(play, file_processing_s=0.3) as server:
        result = ask_plot(server, "gemini", proxy, inline_media_max_bytes=0, file_poll_interval_s=0.1)
        assert result.ok, result.error
        assert "files.get" in [r.endpoint for r in server.requests]


def test_an_upload_that_expired_or_was_deleted_is_uploaded_again(play, proxy):
    with SimulatorServer(play) as server:
        gateway = Gateway(settings_for(server, inline_media_max_bytes=0))
        segment = SegmentInput(
            index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
        )
        reasoner = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"])
        assert reasoner.reason(segment, None).ok
        assert reasoner.reason(segment, None).ok  # reuses the upload (same content hash)
        uploads = [r.endpoint for r in server.requests].count("files.upload")
        assert uploads == 1
        (stored,) = server.files.list()[0]
        server.files.delete(stored.id)  # as if its 48 h had passed
        result = reasoner.reason(segment, None)
        assert result.ok, result.error
        assert [r.endpoint for r in server.requests].count("files.upload") == 2
        assert 403 in statuses(server)


def test_rules_match_by_api_stage_segment_and_request_number(play, proxy):
    scenario = Scenario(
        rules=[
            FaultRule(kind="server_error", api="openai"),
            FaultRule(kind="server_error", stage="script"),
            FaultRule(kind="server_error", segment=2),
            FaultRule(kind="unavailable", requests=[2]),
        ]
    )
    with SimulatorServer(play, behaviours=scenario) as server:
        first = ask_plot(server, "gemini", proxy)  # segment 1, plot, gemini: only request 1 → answered
        second = ask_plot(server, "gemini", proxy, max_attempts=1)  # request 2 → 503
        assert first.ok and not second.ok and "503" in second.error
        assert scenario.played() == [0, 0, 0, 1]


def test_scenario_files_and_flags_load(tmp_path):
    path = tmp_path / "faults.json"
    path.write_text('{"rules": [{"kind": "rate_limit", "stage": "script", "times": 2, "retry_after_s": 3}]}')
    loaded = Scenario.load(path).plus(Scenario.from_flags(["blocked@distill", "files_processing"]))
    assert [(r.kind, r.stage, r.times) for r in loaded.rules] == [
        ("rate_limit", "script", 2),
        ("blocked", "distill", None),
        ("files_processing", None, None),
    ]
    assert loaded.files_stuck_processing
    with pytest.raises(ValueError, match="unknown kind"):
        parse_flag("meteor@script")
    with pytest.raises(ValueError, match="count"):
        parse_flag("rate_limit@script:zero")


# -- a whole run ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_job_whose_one_segment_always_fails_finishes_and_says_why(tmp_path, monkeypatch):
    """Script generation of segment 2 always answers 500: the job still finishes, the other segments become
    records, and the failure's outcome and reason are in stage_runs and in `v2s status`."""
    from sqlalchemy import select
    from typer.testing import CliRunner

    from annotator.simulator.screenplay import Screenplay
    from jobs.cli import app
    from jobs.runner import JobSpec, run_job
    from profiles_db.db import Database
    from profiles_db.models import Job, Segment, StageRun

    screenplay = Screenplay.load()
    film = film_copy(screenplay, tmp_path / "film.mp4", until_s=110)
    scenario = Scenario(rules=[FaultRule(kind="server_error", stage="script", segment=2)])
    with SimulatorServer(screenplay, behaviours=scenario) as server:
        for name, value in {
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": KEY,
            "V2S_OPENAI_BASE_URL": server.base_url + "/v1",
            "V2S_OPENAI_API_KEY": KEY,
            "V2S_CALL_ATTEMPTS": "2",
            "V2S_RETRY_INITIAL_WAIT_S": "0.01",
            "V2S_RETRY_MAX_WAIT_S": "0.02",
        }.items():
            monkeypatch.setenv(name, value)  # Ray workers started by run_job inherit the environment
        out = tmp_path / "out"
        job_id, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2))
        assert scenario.played() == [2]  # the first try and one retry, nothing more

    assert summary.failed_videos == {}
    assert summary.segments >= 2
    assert [(f.stage, f.status) for f in summary.stage_failures] == [("script", "failed")]
    records = [line for p in (out / "shards").glob("part-*.jsonl") for line in p.read_text().splitlines()]
    assert len(records) == summary.segments - 1 == summary.records_written

    db = Database(f"sqlite:///{out / 'v2s.sqlite'}")
    with db.sessions() as s:
        run = s.execute(
            select(Segment.idx, StageRun.status, StageRun.outcome, StageRun.error)
            .join(Segment, Segment.id == StageRun.segment_id)
            .where(StageRun.stage == "script", StageRun.status != "done")
        ).one()
        job = s.get(Job, job_id)
    assert run.idx == 2 and run.status == "failed" and run.outcome == "server_error"
    assert "HTTP 500" in run.error and "gave up after 2 attempts" in run.error
    assert job.status == "partial"  # records written, but one stage failed: not "done"
    db.dispose()

    shown = CliRunner().invoke(app, ["status", job_id, "--out", str(out)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert "segment 2 script: Gemini script generateContent failed: HTTP 500" in shown.output


# -- what reaches the simulator: media resolution per stage, frames or a video for the openai backend ----------
class Recorder(Behaviours):
    """No faults; remembers what each model call carried."""

    def __init__(self) -> None:
        self.seen: list[RequestInfo] = []

    def before_answer(self, request: RequestInfo) -> Fault | None:
        self.seen.append(request)
        return None


def test_each_stage_sends_its_own_media_resolution(play, proxy):
    recorder = Recorder()
    with SimulatorServer(play, behaviours=recorder) as server:
        settings = settings_for(server, plot_media_resolution="low", script_media_resolution="high")
        gateway = Gateway(settings)
        segment = SegmentInput(
            index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy))
        )
        plot = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"]).reason(segment, None)
        script = ScriptWriter(gateway, backend="gemini", model=MODELS["gemini"]).write(segment, [], "")
    assert plot.ok and script.ok, (plot.error, script.error)
    assert [(r.stage.value, r.media_resolution) for r in recorder.seen] == [
        ("plot_first", "MEDIA_RESOLUTION_LOW"),
        ("script", "MEDIA_RESOLUTION_HIGH"),
    ]
    assert plot.usage.input_tokens < script.usage.input_tokens  # a low-resolution frame costs fewer tokens


@pytest.mark.parametrize(("fps", "max_frames"), [(2.0, 32), (10.0, 3)])
def test_the_openai_backend_can_send_the_clip_as_sampled_frames(play, proxy, fps, max_frames):
    recorder = Recorder()
    with SimulatorServer(play, behaviours=recorder) as server:
        result = ask_plot(
            server,
            "openai",
            proxy,
            openai_video_mode="frames",
            openai_frame_fps=fps,
            openai_max_frames=max_frames,
        )
    assert result.ok, result.error
    (seen,) = recorder.seen
    # the 30-second proxy at `fps`, at most `max_frames`, from its first frame: the simulator read their marks
    assert min(max_frames, 30 * fps) - 3 <= seen.frames <= max_frames
    step = 30 / seen.frames
    assert seen.start_s == 0.0 and abs(seen.end_s - 30.0) <= step


def test_sampled_frames_of_a_window_carry_the_window(play, tmp_path):
    """A window of a longer proxy (offsets mode): the frames sampled show the window, and only the window."""
    longer = make_proxy(tmp_path / "three_s.mp4", segment_provenance(1, 0.0, 30.0), seconds=3.0)
    recorder = Recorder()
    with SimulatorServer(play, behaviours=recorder) as server:
        gateway = Gateway(settings_for(server, openai_video_mode="frames", openai_frame_fps=2.0))
        media = Media(path=longer, sha256=file_sha256(longer), start_offset_s=0.5, end_offset_s=2.0)
        segment = SegmentInput(index=1, start_s=0.5, end_s=2.0, media=media)
        result = PlotReasoner(gateway, backend="openai", model=MODELS["openai"]).reason(segment, None)
    assert result.ok, result.error
    seen = recorder.seen[0]
    assert 2 <= seen.frames <= 4 and seen.start_s == pytest.approx(0.6, abs=0.11)  # the 5 fps proxy's first
    assert 1.9 <= seen.end_s <= 2.0 + 0.6  # the last frame before 2.0 s stands for one sampling step


def test_the_openai_backend_sends_a_video_url_by_default(play, proxy):
    recorder = Recorder()
    with SimulatorServer(play, behaviours=recorder) as server:
        assert ask_plot(server, "openai", proxy).ok
    assert recorder.seen[0].frames == 0 and recorder.seen[0].segment_index == 1


def test_the_sim_server_command_plays_faults_from_a_file_and_flags(tmp_path):
    """`v2s sim-server --faults FILE --fault …` as a real process, hit by the real openai SDK."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import openai

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scenario = tmp_path / "faults.json"
    scenario.write_text('{"rules": [{"kind": "rate_limit", "times": 1, "retry_after_s": 4}]}')
    v2s = Path(sys.executable).with_name("v2s")
    command = [str(v2s), "sim-server", "--port", str(port), "--faults", str(scenario)]
    server = subprocess.Popen(
        [*command, "--fault", "server_error:1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        banner = [server.stdout.readline() for _ in range(6)]
        assert any("fault: " in line and "rate_limit" in line for line in banner), banner
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)

        def chat():
            return client.chat.completions.create(
                model="deepseek-flash", messages=[{"role": "user", "content": "Hello"}]
            )

        with pytest.raises(openai.RateLimitError) as limited:
            chat()
        assert limited.value.response.headers["retry-after"] == "4"
        with pytest.raises(openai.InternalServerError):
            chat()
        assert chat().choices[0].message.content
    finally:
        server.terminate()
        server.wait(timeout=10)

    bad = subprocess.run([*command, "--fault", "meteor@script"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown kind 'meteor'" in " ".join(bad.stdout.split())
