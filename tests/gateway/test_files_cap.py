"""Gemini's Files API caps (20 GB a project, 2 GB a file) against a simulator that enforces them, with small caps,
over the real google-genai SDK and HTTP: a full project makes v2s delete its own leftover uploads and try once
more, or fail the stage naming the cap and the fix; a file over 2 GB is refused before any byte is sent."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from annotator.gateway import Gateway, Media
from annotator.gateway.gemini import FILES_MAX_BYTES, GeminiBackend
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import KEY, MODELS, settings_for
from tests.support.play import make_proxy, segment_provenance
from workers.storage import file_sha256


@pytest.fixture(scope="module")
def other_proxy(tmp_path_factory):
    """Another segment's proxy: a second upload of about the same size."""
    return make_proxy(tmp_path_factory.mktemp("proxy2") / "seg2.mp4", segment_provenance(2, 30.0, 60.0))


def media(path) -> Media:
    return Media(path=path, sha256=file_sha256(path))


def ask_plot(server: SimulatorServer, path, *, sha256: str | None = None):
    """The plot stage with its video always through the Files API (inline limit 0)."""
    gateway = Gateway(settings_for(server, inline_media_max_bytes=0))
    shown = Media(path=path, sha256=sha256 or file_sha256(path))
    segment = SegmentInput(index=1, start_s=0.0, end_s=30.0, media=shown)
    return PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"]).reason(segment, None)


def uploads(server: SimulatorServer) -> list[int]:
    return [r.status for r in server.requests if r.endpoint == "files.upload"]


def test_the_simulator_refuses_an_upload_past_the_project_storage_with_gemini_quota_body(play, proxy):
    size = proxy.stat().st_size
    with SimulatorServer(play, file_storage_cap_bytes=size + size // 2) as server:
        gemini = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        gemini.files.upload(file=str(proxy), config={"mime_type": "video/mp4"})
        with pytest.raises(errors.ClientError) as caught:
            gemini.files.upload(file=str(proxy), config={"mime_type": "video/mp4"})
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert "file_storage_bytes" in caught.value.message
    (quota,) = [d for d in caught.value.details["error"]["details"] if "QuotaFailure" in d["@type"]]
    assert quota["violations"][0]["quotaId"] == "FileStorageBytesPerProject"


def test_the_simulator_refuses_a_file_over_the_per_file_maximum(play, proxy):
    with SimulatorServer(play, file_max_bytes=1000) as server:
        gemini = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        with pytest.raises(errors.ClientError) as caught:
            gemini.files.upload(file=str(proxy), config={"mime_type": "video/mp4"})
    assert caught.value.code == 400 and "at most 1000 bytes" in caught.value.message


def test_a_full_project_makes_v2s_delete_its_own_leftover_uploads_and_try_once_more(play, proxy, other_proxy):
    """Before: the 429 was retried after its RetryInfo wait (int64-max seconds), and the stage crashed."""
    size = max(proxy.stat().st_size, other_proxy.stat().st_size)
    with SimulatorServer(play, file_storage_cap_bytes=size + size // 2) as server:
        leftover = GeminiBackend(settings_for(server))._uploaded(
            media(other_proxy)
        )  # a finished run's upload
        assert leftover.name.startswith("files/v2s-")
        result = ask_plot(server, proxy)
        assert result.ok, result.error
        assert server.files.get(leftover.name) is None  # deleted to make room
        assert uploads(server) == [200, 429, 200]
        assert len(server.files) == 1


def test_a_project_full_of_other_files_fails_the_stage_naming_the_cap_and_the_fix(play, proxy, other_proxy):
    size = max(proxy.stat().st_size, other_proxy.stat().st_size)
    with SimulatorServer(play, file_storage_cap_bytes=size + size // 2) as server:
        gemini = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))
        other = gemini.files.upload(file=str(other_proxy), config={"mime_type": "video/mp4"})  # not v2s's
        result = ask_plot(server, proxy)
        assert server.files.get(other.name) is not None  # never deleted: not v2s's
    assert not result.ok and result.outcome == "error"
    assert "Files API storage is full" in result.error and "FileStorageBytesPerProject" in result.error
    assert "delete" in result.error and "48 h" in result.error and proxy.name in result.error
    assert server.request_count() == 0  # no model call was made with no video


def test_a_file_over_two_gb_is_a_clear_error_before_any_upload(play, tmp_path):
    """Before: nothing checked the size; the upload went out and Gemini's refusal failed the stage late."""
    huge = tmp_path / "whole-film-proxy.mp4"
    with huge.open("wb") as out:  # sparse: 2 GiB and one byte, no disk used
        out.truncate(FILES_MAX_BYTES + 1)
    with SimulatorServer(play) as server:
        result = ask_plot(server, huge, sha256="0" * 64)
        assert uploads(server) == [] and server.request_count() == 0
    assert not result.ok and result.outcome == "error"
    assert "whole-film-proxy.mp4" in result.error and "at most 2 GB a file" in result.error
