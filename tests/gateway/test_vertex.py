"""Vertex AI has no Files API (google-genai raises ValueError for files.upload on a Vertex client): a proxy too
big to go inline fails its stage with a reason naming the size and the fix, and an SDK refusal never escapes
the gateway to abort the job. No request leaves the machine: the refusal comes before any call."""

from __future__ import annotations

import pytest

from annotator.gateway.base import Media, ModelCallError
from annotator.gateway.gemini import VERTEX_INLINE_MAX_BYTES, GeminiBackend
from annotator.settings import ModelSettings


@pytest.fixture
def vertex() -> GeminiBackend:
    return GeminiBackend(ModelSettings(_env_file=None, vertex_project="proj", vertex_location="europe-west4"))


def test_a_proxy_too_big_for_inline_fails_its_stage_naming_the_fix(vertex, tmp_path):
    big = tmp_path / "seg_0001.mp4"
    big.write_bytes(b"\0" * (VERTEX_INLINE_MAX_BYTES + 1))
    for upload in (False, True):  # plain calls, and the paths that would upload (caches, batch files)
        with pytest.raises(ModelCallError) as refused:
            vertex._video_part(Media(path=big, sha256="x"), upload=upload)
        assert "seg_0001.mp4 is 14.0 MiB: on Vertex AI a video goes inline" in str(refused.value)
        assert "V2S_SPLIT_PROXY__HEIGHT" in str(refused.value) and refused.value.outcome == "error"


def test_a_small_proxy_goes_inline_on_vertex(vertex, tmp_path):
    small = tmp_path / "seg_0002.mp4"
    small.write_bytes(b"\0" * 1024)
    part = vertex._video_part(Media(path=small, sha256="y"))
    assert part.inline_data is not None and part.file_data is None


def test_an_sdk_refusal_is_a_stage_failure_not_an_exception_of_the_job(vertex):
    def files_upload():
        raise ValueError("This method is only supported in the Gemini Developer client.")

    with pytest.raises(
        ModelCallError, match="Gemini upload refused by the SDK: This method is only supported"
    ):
        vertex.call(files_upload, "upload")
