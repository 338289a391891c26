"""Shot detection on planted films: hard cuts, dissolves, fades and dips to black found, flashes and compression
pulses ignored, the same in every codec we accept; missing frames fail the video with a reason."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import av
import pytest

from annotator.media import MediaError, ffmpeg_exe
from tests.splitter.films import ENCODING_SUFFIX, ENCODINGS, planted_film, static_film, transcode
from workers.splitter import SplitSettings, detect_shots
from workers.splitter.decode import analyse
from workers.splitter.shots import find_cuts


@cache
def _encoders() -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def _available(encoding: str) -> bool:
    codec = ENCODINGS[encoding][ENCODINGS[encoding].index("-c:v") + 1]
    return f" {codec} " in _encoders()


def f1(found: list[float], truth: list[float], tolerance: float = 0.5) -> float:
    """Each true cut matches at most one found cut within `tolerance` (greedy by distance)."""
    pairs = sorted((abs(f - t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth))
    used_f, used_t = set(), set()
    for gap, i, j in pairs:
        if gap <= tolerance and i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    hits = len(used_t)
    if not found or not truth:
        return float(found == truth)
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall) if hits else 0.0


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, list[float], list[float]]:
    return planted_film(tmp_path_factory.mktemp("films") / "planted.mp4", shots=12, shot_s=5.0)


@pytest.fixture(scope="module")
def versions(planted, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codecs")
    out = {"h264": planted[0]}
    for encoding in ENCODINGS:
        if _available(encoding):
            out[encoding] = transcode(
                planted[0], folder / f"planted_{encoding}{ENCODING_SUFFIX[encoding]}", encoding
            )
    return out


@pytest.mark.parametrize("encoding", ["h264", *ENCODINGS])
def test_planted_cuts_found_in_every_codec(encoding, planted, versions):
    if encoding not in versions:
        pytest.skip(f"this ffmpeg cannot encode {encoding}")
    _, truth, flashes = planted
    settings = SplitSettings()
    analysis = analyse(versions[encoding], settings, listen=False)
    found = [c.time_s for c in find_cuts(analysis.features, analysis.fps, settings.shots)]
    assert f1(found, truth) >= 0.95, (encoding, found, truth)
    assert not [f for f in found if any(abs(f - x) < 0.3 for x in flashes)], "a flash is no cut"
    assert analysis.interlaced == encoding.endswith("i")  # so the proxies of these get deinterlaced


def test_static_shot_with_keyframes_has_no_cut(tmp_path):
    """The issue's 20-minute static shot, kept small (128x72 at 4 fps: ~20 s to make and scan) so that every one
    of its ~200 keyframes, each a compression pulse over the unchanged picture, is still there to trip on."""
    film, keyframes = static_film(tmp_path / "static.mp4", 20 * 60.0, size="128x72", fps=4)
    assert len(keyframes) > 150
    with av.open(str(film)) as container:
        keys = sum(1 for p in container.demux(container.streams.video[0]) if p.is_keyframe)
    assert keys >= len(keyframes)  # the pulses are there: one keyframe 2-10 s apart
    assert detect_shots(film) == []


def test_pyscenedetect_detector_is_fed_the_pyav_frames(planted):
    film, truth, flashes = planted
    settings = SplitSettings(shots={"detector": "adaptive"})
    found = detect_shots(film, settings)
    hard = truth[0::6] + truth[2::6]  # the plain cuts of the cycle (PySceneDetect misses slow dissolves)
    assert all(any(abs(f - t) <= 0.5 for f in found) for t in hard), (found, hard)
    assert not [f for f in found if any(abs(f - x) < 0.3 for x in flashes)]


def test_missing_frames_fail_the_video_with_a_reason(planted, tmp_path):
    data = bytearray(planted[0].read_bytes())
    a, b = int(len(data) * 0.35), int(len(data) * 0.6)
    data[a:b] = bytes(b - a)  # a damaged copy: a quarter of the file is zeros
    broken = tmp_path / "damaged.mp4"
    broken.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"damaged\.mp4: only \d+ of ~\d+ video frames decoded"):
        detect_shots(broken)
    text = tmp_path / "notes.mkv"
    text.write_text("not a video\n" * 50)
    with pytest.raises(MediaError, match=r"notes\.mkv"):
        detect_shots(text)
