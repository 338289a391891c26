"""Probe, shot detection, segment planning and proxies on real files with the real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator.media import MediaError, probe, read_provenance
from annotator.schemas.provenance import Provenance
from tests.support.media import color_film
from workers.splitter import detect_shots, detect_silences, make_proxy, plan_segments


def test_plan_cuts_at_the_latest_shot_boundary_within_the_limit():
    plans = plan_segments(200, [25, 50, 80, 110, 140, 170], 60)
    assert [(p.start_s, p.end_s) for p in plans] == [(0, 50), (50, 110), (110, 170), (170, 200)]
    assert all(p.end_s - p.start_s <= 60 for p in plans)


def test_plan_prefers_a_boundary_inside_a_silence():
    plans = plan_segments(120, [40, 55], 60, silences=[(39.5, 41.0)])
    assert (
        plans[0].end_s == 40
    )  # 55 is later but cuts through sound; 40 is silent and in the window's last half


def test_plan_without_boundaries_cuts_at_the_limit_and_short_video_is_one_segment():
    assert [(p.start_s, p.end_s) for p in plan_segments(130, [], 60)] == [(0, 60), (60, 120), (120, 130)]
    assert [(p.start_s, p.end_s) for p in plan_segments(40, [], 60)] == [(0, 40)]


def test_plan_joins_a_sliver_at_the_end():
    plans = plan_segments(60.3, [], 60)
    assert [(p.start_s, p.end_s) for p in plans] == [(0, 60.3)]


def test_detect_shots_finds_planted_cuts(tmp_path):
    film = color_film(tmp_path / "cuts.mp4", [4.0, 9.0, 13.0], 16.0)
    cuts = detect_shots(film)
    assert len(cuts) == 3
    for found, planted in zip(cuts, [4.0, 9.0, 13.0], strict=True):
        assert abs(found - planted) <= 0.2


def test_silences_and_proxy_carry_provenance(tmp_path):
    film = color_film(tmp_path / "film.mp4", [3.0], 6.0)
    assert detect_silences(film) == []  # a continuous tone has no silence
    tag = Provenance(video_id="abc", source_uri=str(film), segment_index=2, start_s=3.0, end_s=6.0)
    proxy = make_proxy(film, tmp_path / "proxy" / "seg.mp4", tag, height=90, fps=4)
    info = probe(proxy)
    assert info.height == 90 and info.has_audio
    assert abs(info.duration_s - 3.0) < 0.4
    assert read_provenance(proxy) == tag
    assert read_provenance(proxy.read_bytes()) == tag


def test_probe_names_the_input_and_the_problem(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match=r"empty\.mp4: file is empty"):
        probe(empty)
    with pytest.raises(MediaError, match=r"notes\.mp4: not a readable video"):
        probe(text)
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    silent = color_film(tmp_path / "silent.mp4", [], 3.0, audio=False)
    assert probe(silent).has_audio is False


def test_a_broken_proxy_is_cut_again_and_a_good_one_reused(tmp_path):
    from workers.fetch import ensure_proxy

    film = color_film(tmp_path / "film.mp4", [3.0], 6.0)
    tag = Provenance(video_id="abc", source_uri=str(film), segment_index=1, start_s=0.0, end_s=3.0)
    cuts: list[str] = []

    def cut(target):
        cuts.append(str(target))
        return make_proxy(film, target, tag, height=90, fps=4)

    out = str(tmp_path / "out")
    uri = ensure_proxy(out, "abc", 1, cut)
    probe_path = Path(uri)
    assert len(cuts) == 1 and read_provenance(probe_path) == tag
    assert ensure_proxy(out, "abc", 1, cut) == uri and len(cuts) == 1  # a whole proxy is reused
    data = probe_path.read_bytes()
    probe_path.write_bytes(data[: len(data) // 3])  # another run's half-written file, say
    assert ensure_proxy(out, "abc", 1, cut) == uri and len(cuts) == 2  # probed, found broken, cut again
    assert abs(probe(probe_path).duration_s - 3.0) < 0.4
    assert not list(probe_path.parent.glob("*.partial*"))  # each cut wrote under its own temp name
