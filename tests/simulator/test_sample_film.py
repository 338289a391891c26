"""The sample film and its ground truth, checked with the real tools (ffmpeg, PyAV, PySceneDetect)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import scenedetect

from annotator.media import probe
from annotator.schemas.script import ENVIRONMENT
from annotator.simulator.film import OFF_SCREEN, render_sample, render_silent_film, sound_spans
from annotator.simulator.screenplay import DEFAULT_SCREENPLAY, CastMember, Screenplay
from tests.support.media import scene_segments

MAX_SEGMENT_S = 60.0


@pytest.fixture(scope="session")
def screenplay() -> Screenplay:
    return Screenplay.load()


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return render_sample(tmp_path_factory.mktemp("film"))


@pytest.fixture(scope="session")
def soundtrack(sample: tuple[Path, Path]) -> tuple[np.ndarray, int]:
    """The film's audio decoded to mono floats, placed on the film's own timeline."""
    rate = 16000
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks, first_time = [], None
    with av.open(str(sample[0])) as container:
        for frame in container.decode(container.streams.audio[0]):
            first_time = frame.time if first_time is None else first_time
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    lead = np.zeros(max(0, round((first_time or 0.0) * rate)), dtype=np.float32)
    return np.concatenate([lead, *chunks]), rate


def _rms(audio: tuple[np.ndarray, int], start: float, end: float) -> float:
    samples, rate = audio
    window = samples[round(start * rate) : round(end * rate)]
    return float(np.sqrt(np.mean(np.square(window)))) if len(window) else 0.0


def _segments(screenplay: Screenplay) -> list[tuple[float, float]]:
    return scene_segments(screenplay, MAX_SEGMENT_S)


def _said(screenplay: Screenplay, member: CastMember, start: float, end: float) -> list[float]:
    """Times in [start, end) when another character's dialogue, or their own, contains one of member's names."""
    words = {part for name in [member.name, *member.aliases] for part in name.replace(".", "").split()}
    words -= {"Mr", "Mrs", "Ms", "Uncle", "Officer", "the"}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(words))) + r")\b", re.IGNORECASE)
    return [
        e.timestamp
        for e in screenplay.script.events()
        if start <= e.timestamp < end and e.dialogue and pattern.search(e.dialogue)
    ]


def _first_seen(screenplay: Screenplay, name: str) -> float:
    return min(e.timestamp for e in screenplay.script.events() if e.character == name)


# ── the ground truth ───────────────────────────────────────────────────────────────────────────────────


def test_screenplay_shape(screenplay: Screenplay) -> None:
    scenes = screenplay.script.script
    assert 180 <= screenplay.duration_s <= 220
    assert len(scenes) >= 7 and len(screenplay.cast) >= 4
    assert len({s.location for s in scenes}) == len(scenes), "every scene is a different location"
    assert len({c.color for c in screenplay.cast}) == len(screenplay.cast), "cast colours are distinct"
    for member in screenplay.cast:
        assert member.appearance and member.voice and member.personality and member.look
    for scene, (start, end) in zip(scenes, screenplay.scene_spans(), strict=True):
        assert (scene.start_timestamp, scene.end_timestamp) == (start, end)
        assert start == int(start) and 20 <= end - start <= 40
        assert scene.location and scene.type and scene.environment and scene.time and scene.mood
        assert all(start <= e.timestamp < end and e.timestamp == int(e.timestamp) for e in scene.events)
    per_minute = len(screenplay.script.events()) / screenplay.duration_s * 60
    assert 10 <= per_minute <= 15
    meta = screenplay.script.meta
    assert meta.title == screenplay.title and set(meta.characters) == {c.name for c in screenplay.cast}
    assert len(screenplay.script.high_points) >= 3
    assert any(e.character == ENVIRONMENT and e.audio_cue for e in screenplay.script.events())


def test_one_man_is_named_only_in_a_later_segment(screenplay: Screenplay) -> None:
    late = [
        c for c in screenplay.cast if c.named_at is not None and c.named_at > _first_seen(screenplay, c.name)
    ]
    assert len(late) == 1
    member, segments = late[0], _segments(screenplay)
    assert len(segments) >= 4 and all(end - start <= MAX_SEGMENT_S for start, end in segments)

    def segment_of(t: float) -> int:
        return next(i for i, (a, b) in enumerate(segments) if a <= t < b)

    assert member.named_at > 120
    assert segment_of(member.named_at) > segment_of(_first_seen(screenplay, member.name))
    assert _said(screenplay, member, 0, member.named_at) == [], "nobody says his name before named_at"
    assert _said(screenplay, member, member.named_at, member.named_at + 1) == [member.named_at]
    spoke_unnamed = [
        e for e in screenplay.script.events() if e.character == member.name and e.timestamp < member.named_at
    ]
    assert any(e.dialogue for e in spoke_unnamed), "he speaks while still unnamed"


def test_one_woman_changes_costume_and_is_named_on_both_sides(screenplay: Screenplay) -> None:
    changed = [c for c in screenplay.cast if c.costumes]
    assert len(changed) == 1
    member = changed[0]
    change = member.costumes[0].from_s
    assert member.color_at(change) != member.color_at(change - 1)
    assert member.look_at(change) != member.look_at(change - 1)
    segments = _segments(screenplay)
    assert change in {start for start, _ in segments}, "the change falls between two segments"
    assert _said(screenplay, member, 0, change)
    assert _said(screenplay, member, change, screenplay.duration_s)


def test_every_cast_member_is_named_in_dialogue_and_someone_is_in_every_segment(
    screenplay: Screenplay,
) -> None:
    for member in screenplay.cast:
        assert _said(screenplay, member, 0, screenplay.duration_s), member.name
    on_screen_per_segment = [
        {
            e.character
            for e in screenplay.script.events()
            if start <= e.timestamp < end and e.character != ENVIRONMENT and e.voice_type not in OFF_SCREEN
        }
        for start, end in _segments(screenplay)
    ]
    assert set.intersection(*on_screen_per_segment)


# ── the film ───────────────────────────────────────────────────────────────────────────────────────────


def test_film_file(sample: tuple[Path, Path], screenplay: Screenplay) -> None:
    video, truth = sample
    info = probe(video)
    assert abs(info.duration_s - screenplay.duration_s) <= 0.5
    assert info.has_audio and info.video_codec == "h264"
    assert (info.width, info.height, round(info.fps)) == (640, 360, 12)
    assert video.stat().st_size < 3_000_000
    assert video.name == "first-boat-to-marrow-island.mp4"
    assert truth.read_bytes() == DEFAULT_SCREENPLAY.read_bytes()
    assert json.loads(truth.read_text())["title"] == screenplay.title


@pytest.mark.parametrize("detector", [scenedetect.AdaptiveDetector, scenedetect.ContentDetector])
def test_scene_detection_finds_every_cut_and_nothing_else(
    sample: tuple[Path, Path], screenplay: Screenplay, detector: type
) -> None:
    found = [scene[0].seconds for scene in scenedetect.detect(str(sample[0]), detector())[1:]]
    expected = [start for start, _ in screenplay.scene_spans()[1:]]
    assert len(found) == len(expected), (found, expected)
    assert all(abs(a - b) <= 0.5 for a, b in zip(found, expected, strict=True)), (found, expected)


def test_sound_at_lines_and_cues_and_silence_between(
    soundtrack: tuple[np.ndarray, int], screenplay: Screenplay
) -> None:
    sounds = sound_spans(screenplay)
    voices = [s for s in sounds if s.kind == "voice"]
    assert len(voices) == sum(1 for e in screenplay.script.events() if e.dialogue)
    for sound in sounds:
        assert _rms(soundtrack, sound.start + 0.1, min(sound.end, sound.start + 0.6)) > 0.01, sound
    gaps = [(a.end + 0.15, b.start - 0.15) for a, b in itertools.pairwise(sounds)]
    gaps = [(a, b) for a, b in gaps if b - a >= 0.5 and a >= max(s.end for s in sounds if s.start <= a)]
    assert len(gaps) >= 10
    for start, end in gaps:
        assert _rms(soundtrack, start, end) < 0.002, (start, end)


def test_silent_excerpt_has_no_audio_stream(tmp_path: Path) -> None:
    video = render_silent_film(tmp_path / "silent.mp4", seconds=10)
    info = probe(video)
    assert not info.has_audio
    assert abs(info.duration_s - 10) <= 0.5
    assert not list(tmp_path.glob("*.partial.mp4"))
