"""Speech-aware boundaries on a planted-dialogue film: one continuous shot, a music bed that never falls silent,
lines of real (espeak-ng) speech crossing every forced boundary position. No boundary may fall inside a line,
whether the lines are heard (VAD), read from a sidecar .srt, or read from the file's own subtitle stream. A second
film is fast conversation, lines 0.2-0.4 s apart: speech runs throughout, and every boundary must still fall in a
pause between two lines, late in its window."""

from __future__ import annotations

import shutil
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from annotator.media import ffmpeg_exe, probe
from tests.splitter.films import back_to_back, dialogue_film, write_srt
from workers.splitter import SplitSettings, detect_silences, split_video
from workers.splitter.decode import analyse
from workers.splitter.speech import parse_cues, sidecar_files

MAX_S = 60.0
# (start s, line): lines 0-3 last 5-6.5 s; the ones at 55.5 and 116 cross the forced positions 60 and 120
PLACEMENTS = [(2, 0), (11, 1), (20, 2), (29, 3), (38, 0), (47.5, 1), (55.5, 0), (64.5, 2), (72, 3)]
PLACEMENTS += [(80, 1), (89, 0), (98, 2), (106, 3), (116, 0), (125, 1), (134, 2), (141, 3)]


# fast conversation. The espeak lines hold 0.2-0.25 s comma pauses, which the VAD hears as wide as a 0.3 s pause
# between lines (it trails off after a line's last word), so every window's later part (30 s, 5+ lines) holds a
# 0.4 s pause, the one thing a VAD can tell from a comma; with this order it does on every room-tone seed tried (1-6)
FAST_PAUSES = [0.3, 0.4, 0.2, 0.35]
FAST_S = 150.0


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    return dialogue_film(tmp_path_factory.mktemp("dialogue") / "talk.mp4", PLACEMENTS, 150.0)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory) -> tuple[Path, list[tuple[float, float]]]:
    placements = back_to_back(FAST_S, FAST_PAUSES)
    return dialogue_film(tmp_path_factory.mktemp("fast") / "fast.mp4", placements, FAST_S)


def _inside(t: float, lines: list[tuple[float, float]]) -> bool:
    return any(a < t < b for a, b in lines)


def _flat(spans: list[tuple[float, float]]) -> list[float]:
    return [t for span in spans for t in span]


def _boundaries(result) -> list[float]:
    return [p.end_s for p in result.plans[:-1]]


def test_the_film_forces_the_question(dialogue):
    film, lines = dialogue
    assert _inside(MAX_S, lines) and _inside(2 * MAX_S, lines)  # cutting at the limit would cut a line
    assert detect_silences(film) == []  # and the music bed leaves no silence to cut in


def test_no_boundary_inside_a_heard_line(dialogue):
    film, lines = dialogue
    result = split_video(film, probe(film), MAX_S)
    assert result.cuts == []  # one continuous shot
    bounds = _boundaries(result)
    assert len(bounds) == 2, result.plans
    assert not [b for b in bounds if _inside(b, lines)], (bounds, lines)
    assert all(p.end_s - p.start_s <= MAX_S for p in result.plans)
    heard = result.dialogue  # every planted line was heard over the music
    assert all(any(a <= lo + 0.3 and b >= hi - 0.3 for a, b in heard) for lo, hi in lines), heard


def test_fast_dialogue_is_cut_late_in_the_window_and_inside_a_pause(conversation):
    film, lines = conversation
    between = [(a[1], b[0]) for a, b in pairwise(lines)]
    assert all(0.19 <= b - a <= 0.41 for a, b in between), between
    result = split_video(film, probe(film), MAX_S)
    assert result.cuts == []  # one continuous shot
    assert len(result.dialogue) == 1  # the VAD's lines bridge every pause: speech runs throughout
    pauses = [(0.0, lines[0][0]), *between, (lines[-1][1], FAST_S)]
    bounds = _boundaries(result)
    nearest = [(b, min(pauses, key=lambda p: abs((p[0] + p[1]) / 2 - b))) for b in bounds]
    assert not [(b, p) for b, p in nearest if not p[0] < b < p[1]], nearest  # (boundary, nearest pause)
    # each window's later half holds pauses, so no segment is cut short (the window is [start + 5, start + 60])
    late = MAX_S * SplitSettings().plan.preferred_from
    assert all(p.end_s - p.start_s >= late for p in result.plans[:-1]), bounds
    assert all(p.end_s - p.start_s <= MAX_S for p in result.plans), bounds


def test_no_boundary_inside_a_line_given_only_as_a_sidecar_srt(dialogue, tmp_path):
    film, lines = dialogue
    copy = tmp_path / "episode.mp4"
    shutil.copyfile(film, copy)
    write_srt(tmp_path / "episode.en.srt", lines)
    settings = SplitSettings(speech={"vad": "none"})  # deaf: only the subtitles tell where the lines are
    result = split_video(copy, probe(copy), MAX_S, settings)
    assert _flat(result.dialogue) == pytest.approx(_flat(lines))
    assert not [b for b in _boundaries(result) if _inside(b, lines)]


def test_a_subtitle_stream_of_the_file_is_read_as_dialogue(dialogue, tmp_path):
    film, lines = dialogue
    srt = write_srt(tmp_path / "cues.srt", lines)
    muxed = tmp_path / "with_subs.mkv"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-i", str(film), "-i", str(srt)]
    subprocess.run([*cmd, "-map", "0", "-map", "1", "-c", "copy", str(muxed)], check=True)
    analysis = analyse(muxed, SplitSettings(speech={"vad": "none"}))
    assert _flat(analysis.subtitles) == pytest.approx(_flat(lines), abs=0.01)


def test_cue_files_are_found_and_parsed(tmp_path):
    video = tmp_path / "film.mkv"
    video.write_bytes(b"")
    for name in ("film.srt", "film.en.vtt", "filmography.srt", "other.srt"):
        (tmp_path / name).write_text("")
    assert [p.name for p in sidecar_files(video)] == ["film.en.vtt", "film.srt"]
    vtt = "WEBVTT\n\n00:01.500 --> 00:04.250\nHello\n\n01:02:03.000 --> 01:02:05.5 line:0\nBye\n"
    assert parse_cues(vtt) == [(1.5, 4.25), (3723.0, 3725.5)]
    srt = "1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:03,000 --> 00:00:02,000\nbackwards, skipped\n"
    assert parse_cues(srt) == [(1.0, 2.0)]
