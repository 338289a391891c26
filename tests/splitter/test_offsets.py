"""The DESIGN §6 alternative to cut proxies: one proxy per video, uploaded once, each segment addressed by Gemini
`videoMetadata` start/end offsets. The same small job runs through the simulator in both modes; the records must
tell the same times (the model answers counting from the start offset, the engine adds the segment's start)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotator.media import probe, read_provenance
from annotator.simulator.film import DEFAULT_SCREENPLAY
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, run_job
from tests.support import e2e as checks
from tests.support.films import film_copy
from workers.splitter.proxy_check import measure

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]

TIME_KEYS = ("timestamp", "start_s", "end_s", "time_range", "first_appear")


def _times(node: object, path: str = "") -> list[tuple[str, object]]:
    """Every time in a record, keyed by where it sits (ids and URIs left out: they name the proxy)."""
    if isinstance(node, dict):
        return [pair for key, value in sorted(node.items()) for pair in _times(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _times(value, f"{path}[{i}]")]
    return [(path, node)] if any(key in path.rsplit(".", 1)[-1] for key in TIME_KEYS) else []


def _run(film: Path, out: Path, mode: str, server: SimulatorServer) -> tuple[list[dict], int]:
    """One job in `mode`; returns its records (by segment start) and the uploads the simulator received."""
    before = server.files.finalized
    os.environ["V2S_SPLIT_PROXY_MODE"] = mode
    try:
        spec = JobSpec(source=str(film), out=out, max_segment_s=15, num_cpus=2)
        _, summary = run_job(spec)
    finally:
        os.environ.pop("V2S_SPLIT_PROXY_MODE", None)
    assert summary.segments >= 3 and not summary.failed_videos and not summary.stage_failures, summary
    assert summary.records_written == summary.segments
    records = sorted(checks.records(out), key=lambda r: r["video"]["start_s"])
    # every upload is deleted once its video is final: none is left behind to fill the 20 GB Files quota
    assert len(server.files) == 0
    return records, server.files.finalized - before


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The simulator and a 40 s film of its screenplay (not the full sample film: this test needs 3 segments)."""
    folder = tmp_path_factory.mktemp("offsets")
    screenplay = Screenplay.load(DEFAULT_SCREENPLAY)
    film = film_copy(screenplay, folder / "short.mp4", until_s=40)
    # every proxy through the Files API, so uploads count
    with (
        SimulatorServer(screenplay) as server,
        checks.models_from(server, "sim-test-key-offsets", V2S_INLINE_MEDIA_MAX_BYTES="0"),
    ):
        yield film, folder, server


@pytest.fixture(scope="module")
def segments_run(env):
    """The job in segments mode (a proxy per segment), once for the module."""
    film, folder, server = env
    return _run(film, folder / "segments", "segments", server)


def test_offsets_mode_tells_the_same_times_with_one_upload_per_video(env, segments_run):
    film, folder, server = env
    by_segment, segment_uploads = segments_run
    by_offsets, offset_uploads = _run(film, folder / "offsets", "offsets", server)
    assert segment_uploads == len(by_segment)  # one proxy file per segment
    assert offset_uploads == 1  # one proxy of the whole video, uploaded once
    proxies = sorted((folder / "offsets" / "proxies").rglob("*.mp4"))
    assert len(proxies) == 1
    shown = read_provenance(proxies[0])
    assert shown is not None and shown.start_s == 0.0
    assert abs(shown.end_s - probe(film).duration_s) < 0.5
    # the proxy shows what its tag says: the whole film, not the first shot (what the records were once paired with)
    assert abs(measure(proxies[0]).video_s - probe(film).duration_s) < 0.3
    assert [_times(r) for r in by_offsets] == [_times(r) for r in by_segment]
    assert any(path.endswith("timestamp") for path, _ in _times(by_offsets[-1]))  # times were compared


def test_the_whole_video_script_of_short_segments_has_the_screenplays_scenes(env, segments_run):
    """15 s segments cut scenes of ~28 s in two or three: merged, the video's script has each scene once (#32)."""
    from annotator.schemas import Record
    from annotator.video_script import merge_video

    film = env[0]
    records = [Record.model_validate(r) for r in segments_run[0]]
    assert len(records) >= 3
    whole = merge_video(records)
    shown = [
        s
        for s in Screenplay.load(DEFAULT_SCREENPLAY).script.script
        if s.start_timestamp < probe(film).duration_s
    ]
    assert [s.location for s in whole.script.script] == [s.location for s in shown]
    assert whole.joined_scenes >= 1
