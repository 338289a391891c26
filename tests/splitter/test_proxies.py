"""Proxies: all of a video's segments from one ffmpeg run; interlaced sources deinterlaced, anamorphic ones
widened to square pixels, letterbox bars cropped, and each transform recorded in the proxy's tag."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from annotator.media import MediaError, ffmpeg_exe, probe, read_provenance, read_transform
from annotator.schemas.provenance import Provenance
from tests.support.films import film_copy
from tests.support.media import color_film
from workers.splitter import ProxyBatch, SplitSettings, split_video
from workers.splitter.proxy_check import measure, proxy_problem
from workers.splitter.sample import sample_transform


def _tags(film: Path, spans: list[tuple[float, float]]) -> list[Provenance]:
    return [
        Provenance(video_id="vid", source_uri=str(film), segment_index=i, start_s=a, end_s=b)
        for i, (a, b) in enumerate(spans, start=1)
    ]


def test_all_proxies_of_a_video_come_from_one_ffmpeg_run(tmp_path, monkeypatch):
    film = color_film(tmp_path / "film.mp4", [4.0, 9.0, 13.0], 16.0)
    spans = [(0.0, 4.0), (4.0, 9.0), (9.0, 16.0)]
    tags = _tags(film, spans)
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(cmd, *args, **kwargs):
        calls.append(list(cmd))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting)
    settings = SplitSettings().proxy.model_copy(update={"height": 90, "fps": 4})
    with ProxyBatch(film, tags, settings, None, None) as batch:
        made = [batch.make(t.segment_index, tmp_path / "out" / f"seg_{t.segment_index}.mp4") for t in tags]
    assert len([c for c in calls if c and c[0] == ffmpeg_exe()]) == 1 and batch.runs == 1
    for tag, proxy in zip(tags, made, strict=True):
        info = probe(proxy)
        assert info.height == 90 and info.has_audio
        assert abs(info.duration_s - (tag.end_s - tag.start_s)) < 0.4, (tag, info.duration_s)
        assert read_provenance(proxy) == tag
        assert read_transform(proxy) == {"crop": None, "deinterlaced": False, "source_sar": "1:1"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["seg_1.mp4", "seg_2.mp4", "seg_3.mp4"]


@pytest.fixture(scope="module")
def boxed(tmp_path_factory) -> Path:
    """Interlaced MPEG-2 in a transport stream, 4:3-anamorphic pixels, a 2.35-ish picture with black bars."""
    path = tmp_path_factory.mktemp("boxed") / "boxed.ts"
    look = "testsrc2=s=320x136:r=50,noise=alls=4:allf=t,pad=320:240:0:52:black,setsar=4/3"
    cmd = [
        ffmpeg_exe(),
        "-y",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        f"{look},trim=duration=12",
    ]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=300:duration=12"]
    cmd += [
        "-vf",
        "tinterlace=mode=interleave_top,setfield=tff",
        "-c:v",
        "mpeg2video",
        "-flags",
        "+ilme+ildct",
    ]
    subprocess.run([*cmd, "-b:v", "2M", "-c:a", "aac", str(path)], check=True)
    return path


def _top_rows_luma(proxy: Path) -> float:
    with av.open(str(proxy)) as container:
        frame = next(container.decode(container.streams.video[0]))
    luma = frame.to_ndarray(format="gray")
    return float(luma[:4].mean())


@pytest.mark.parametrize("picture", ["intermediate", "source"])
def test_interlaced_anamorphic_letterboxed_source(boxed, tmp_path, picture):
    """The same proxy whether its picture comes from the analysis pass's intermediate or from the source."""
    workdir = tmp_path / "work" if picture == "intermediate" else None
    result = split_video(boxed, probe(boxed), 60.0, workdir=workdir)
    assert (result.intermediate is not None) == (picture == "intermediate")
    transform = result.transform
    assert transform.deinterlace and transform.sar == Fraction(4, 3)
    crop = transform.crop
    assert crop is not None and (crop.x, crop.width) == (0, 320)
    assert abs(crop.y - 52) <= 4 and abs(crop.y + crop.height - 188) <= 4, crop
    settings = SplitSettings().proxy
    tags = _tags(boxed, [(p.start_s, p.end_s) for p in result.plans])
    with ProxyBatch(boxed, tags, settings, transform, True, result.intermediate) as batch:
        proxy = batch.make(1, tmp_path / "seg.mp4")
    assert batch.from_intermediate == (picture == "intermediate")
    info = probe(proxy)
    assert info.has_audio and abs(info.duration_s - (tags[0].end_s - tags[0].start_s)) < 0.4
    # cropped to ~136 rows, widened by 4/3 (square pixels): the 320x136 picture shows as ~427x136
    assert info.height == crop.height and abs(info.width - round(320 * 4 / 3)) <= 2, info
    assert _top_rows_luma(proxy) > 40  # no black bar left on top
    recorded = read_transform(proxy)
    assert recorded == {
        "crop": [crop.x, crop.y, crop.width, crop.height],
        "deinterlaced": True,
        "source_sar": "4:3",
    }


def test_a_resume_without_analysis_samples_the_same_transform(boxed):
    sampled = sample_transform(boxed, SplitSettings().proxy)
    assert sampled.deinterlace and sampled.sar == Fraction(4, 3)
    assert sampled.crop is not None and abs(sampled.crop.y - 52) <= 4 and abs(sampled.crop.height - 136) <= 8


def test_proxy_frames_are_not_combed(boxed, tmp_path):
    """Deinterlaced: neighbouring rows of a moving picture agree far better than in the woven source."""
    result = split_video(boxed, probe(boxed), 60.0, workdir=tmp_path / "work")
    tags = _tags(boxed, [(p.start_s, p.end_s) for p in result.plans])
    with ProxyBatch(boxed, tags, SplitSettings().proxy, result.transform, True, result.intermediate) as batch:
        proxy = batch.make(1, tmp_path / "seg.mp4")
    assert batch.from_intermediate

    def comb(path: Path) -> float:
        with av.open(str(path)) as container:
            frames = [
                f.to_ndarray(format="gray").astype(np.int16)
                for _, f in zip(range(8), container.decode(video=0), strict=False)
            ]
        return float(np.mean([np.abs(np.diff(f[40:120], axis=0)).mean() for f in frames]))

    assert comb(proxy) < comb(boxed)


def _mean_rgb(proxy: Path, at: str) -> np.ndarray:
    with av.open(str(proxy)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    frame = frames[0] if at == "first" else frames[-1]
    return frame.reshape(-1, 3).mean(axis=0)


def test_proxies_cut_from_the_intermediate_start_and_end_at_their_cuts(tmp_path):
    """The analysis pass's intermediate keeps the source's timeline: each proxy opens on its own shot's colour
    and closes before the next one, with the audio of the source, from one ffmpeg run."""
    film = color_film(tmp_path / "film.mp4", [4.0, 9.0, 13.0], 16.0)
    spans = [(0.0, 4.0), (4.0, 9.0), (9.0, 16.0)]
    result = split_video(film, probe(film), 60.0, workdir=tmp_path / "work")
    assert result.intermediate is not None and result.intermediate.path.exists()
    settings = SplitSettings().proxy.model_copy(update={"height": 90, "fps": 4})
    # the intermediate was written for the default proxy settings: other settings cut from the source
    with ProxyBatch(film, _tags(film, spans), settings, result.transform, True, result.intermediate) as batch:
        batch.make(1, tmp_path / "other" / "seg_1.mp4")
    assert not batch.from_intermediate
    tags = _tags(film, spans)
    settings = SplitSettings().proxy
    with ProxyBatch(film, tags, settings, result.transform, True, result.intermediate) as batch:
        made = [batch.make(t.segment_index, tmp_path / "out" / f"seg_{t.segment_index}.mp4") for t in tags]
    assert batch.from_intermediate and batch.runs == 1
    with av.open(str(film)) as container:
        source = [f.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0) for f in container.decode(video=0)]
    for tag, proxy in zip(tags, made, strict=True):
        info = probe(proxy)
        assert info.has_audio and info.height == 180 and info.width == 320
        assert abs(info.duration_s - (tag.end_s - tag.start_s)) < 0.4, (tag, info.duration_s)
        assert read_provenance(proxy) == tag
        first, last = round(tag.start_s * 10) + 1, round(tag.end_s * 10) - 2  # source frames inside the shot
        assert np.abs(_mean_rgb(proxy, "first") - source[first]).max() < 12, tag
        assert np.abs(_mean_rgb(proxy, "last") - source[last]).max() < 12, tag


def test_a_late_video_track_stays_in_step_with_the_audio(tmp_path):
    """A transport stream whose picture starts 0.6 s after its sound: proxies from the intermediate (which begins
    at its first frame) keep the same picture/sound offsets as proxies cut from the source."""
    film = tmp_path / "late.ts"
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error"]
    cmd += ["-f", "lavfi", "-i", "testsrc2=s=160x90:r=25,trim=duration=8"]
    cmd += ["-f", "lavfi", "-i", "sine=frequency=300:duration=8.5", "-filter_complex"]
    cmd += ["[0:v]setpts=PTS+0.6/TB[v]", "-map", "[v]", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac"]
    subprocess.run([*cmd, str(film)], check=True)

    def starts(workdir: Path | None) -> list[dict[str, float]]:
        result = split_video(film, probe(film), 4.0, workdir=workdir)
        tags = _tags(film, [(p.start_s, p.end_s) for p in result.plans])
        folder = tmp_path / ("via" if workdir else "direct")
        with ProxyBatch(film, tags, SplitSettings().proxy, result.transform, True, result.intermediate) as b:
            made = [b.make(t.segment_index, folder / f"seg_{t.segment_index}.mp4") for t in tags]
        assert b.from_intermediate == (workdir is not None)
        out = []
        for proxy in made:
            with av.open(str(proxy)) as container:
                out.append({s.type: float((s.start_time or 0) * s.time_base) for s in container.streams})
        return out

    direct, via = starts(None), starts(tmp_path / "work")
    assert len(direct) == len(via) >= 2
    for a, b in zip(direct, via, strict=True):
        assert abs(a["audio"] - b["audio"]) < 0.03 and abs(a["video"] - b["video"]) < 0.03, (direct, via)


@pytest.mark.parametrize("extra_frames", [-20, 1], ids=["shorter-than-a-segment", "one-frame-longer"])
@pytest.mark.parametrize("mode", ["segments", "offsets"])
def test_every_proxy_covers_its_whole_span(tmp_path, mode, extra_frames):
    """A video that fits in one segment (and one a frame longer) gets proxies of their whole spans: the segment
    muxer once split a lone span at its first keyframe after 2 s (the first shot change) and kept only that."""
    max_segment_s, fps = 12.0, 10  # color_film's rate
    duration = max_segment_s + extra_frames / fps
    film = color_film(tmp_path / "film.mp4", [3.0, 7.0], duration)
    settings = SplitSettings().proxy.model_copy(update={"height": 90, "fps": 4})
    result = split_video(film, probe(film), max_segment_s, workdir=tmp_path / "work")
    spans = [(p.start_s, p.end_s) for p in result.plans]
    if mode == "offsets":  # one proxy of the whole video, as workers.tasks cuts it
        spans = [(spans[0][0], spans[-1][1])]
    tags = _tags(film, spans)
    with ProxyBatch(film, tags, settings, result.transform, True, result.intermediate) as batch:
        made = [batch.make(t.segment_index, tmp_path / "out" / f"seg_{t.segment_index}.mp4") for t in tags]
    assert abs(spans[-1][1] - duration) < 0.2 and spans[0][0] == 0.0
    for (start, end), proxy in zip(spans, made, strict=True):
        facts = measure(proxy)
        assert abs(facts.video_s - (end - start)) <= 1 / settings.fps + 0.1, (start, end, facts)
        assert facts.audio_s is not None and abs(facts.audio_s - (end - start)) <= 1 / settings.fps + 0.1


def test_a_proxy_that_is_not_its_span_is_refused_where_it_is_made_and_cut_again_where_reused(tmp_path):
    from workers.fetch import ensure_proxy

    film = color_film(tmp_path / "film.mp4", [3.0], 8.0)
    silent = color_film(tmp_path / "silent.mp4", [3.0], 8.0, audio=False)
    settings = SplitSettings().proxy.model_copy(update={"height": 90, "fps": 4})
    target = tmp_path / "out" / "seg_0001.mp4"
    # cut-time: a part of the wrong length (here: a tag claiming more than the source has) fails its video
    (tag,) = _tags(film, [(0.0, 12.0)])
    with ProxyBatch(film, [tag], settings, None, True) as batch, pytest.raises(MediaError) as refused:
        batch.make(1, target)
    assert "film.mp4" in str(refused.value) and "0.00-12.00s" in str(refused.value)
    assert "shows 8.00s of picture" in str(refused.value) and not target.exists()
    # reuse: a proxy without the sound its source has, or another span's proxy, is cut again
    (whole,) = _tags(film, [(0.0, 8.0)])
    with ProxyBatch(silent, [whole], settings, None, False) as batch:
        batch.make(1, target)  # sound stripped: right length, no audio stream
    cuts: list[Path] = []

    def cut(path: Path) -> Path:
        cuts.append(path)
        with ProxyBatch(film, [whole], settings, None, True) as batch:
            return batch.make(1, path)

    def fits(path: Path) -> str | None:
        return proxy_problem(path, 0.0, 8.0, audio=True, fps=settings.fps)

    assert "no sound" in (fits(target) or "")
    ensure_proxy(str(tmp_path / "out"), "vid", 1, cut, fits)  # out/proxies/vid/seg_0001.mp4
    shutil.copyfile(target, tmp_path / "out" / "proxies" / "vid" / "seg_0001.mp4")
    assert ensure_proxy(str(tmp_path / "out"), "vid", 1, cut, fits) and len(cuts) == 2
    assert fits(tmp_path / "out" / "proxies" / "vid" / "seg_0001.mp4") is None
    ensure_proxy(str(tmp_path / "out"), "vid", 1, cut, fits)
    assert len(cuts) == 2  # a right one is reused


@pytest.fixture(scope="module")
def marked(tmp_path_factory) -> Path:
    """The first 24 s of the sample film: every frame carries the film mark the simulator reads."""
    from annotator.simulator.screenplay import Screenplay

    return film_copy(Screenplay.load(), tmp_path_factory.mktemp("marked") / "film.mp4", until_s=24)


def _hostile(film: Path, target: Path, how: str) -> Path:
    """The film as hostile sources ship: letterboxed, anamorphic and interlaced in MPEG-2, or rotated."""
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error"]
    if how == "rotated":  # a phone video: stored sideways with a display matrix
        rotated = target.with_suffix(".sideways.mp4")
        subprocess.run(
            [*cmd, "-i", str(film), "-vf", "transpose=2", "-c:a", "copy", str(rotated)], check=True
        )
        subprocess.run(
            [*cmd, "-display_rotation", "-90", "-i", str(rotated), "-c", "copy", str(target)], check=True
        )
        return target
    look = "scale=480:272,setsar=4/3,pad=480:360:0:44:black,tinterlace=mode=interleave_top,setfield=tff"
    cmd += ["-i", str(film), "-vf", look, "-c:v", "mpeg2video", "-flags", "+ilme+ildct", "-b:v", "3M"]
    subprocess.run([*cmd, "-c:a", "aac", str(target)], check=True)
    return target


@pytest.mark.parametrize("how", ["boxed", "rotated"])
def test_the_film_mark_survives_every_proxy_transform(marked, tmp_path, how):
    """What the simulator reads (the film time in every picture) comes through cropping, widening,
    deinterlacing, rotation, the proxy encode at proxy size and 6 fps, and JPEG frames sampled from it."""
    from annotator.gateway.base import Media
    from annotator.gateway.clip_media import sample_frames
    from annotator.simulator.media_reader import read_frames, read_video
    from annotator.simulator.screenplay import Screenplay

    source = _hostile(marked, tmp_path / f"{how}.mkv", how)
    result = split_video(source, probe(source), 10.0, workdir=tmp_path / "work")
    spans = [(p.start_s, p.end_s) for p in result.plans]
    tags = _tags(source, spans)
    settings = SplitSettings().proxy.model_copy(update={"height": 180})
    with ProxyBatch(source, tags, settings, result.transform, True, result.intermediate) as batch:
        made = [batch.make(t.segment_index, tmp_path / f"seg_{t.segment_index}.mp4") for t in tags]
    for (start, end), proxy in zip(spans, made, strict=True):
        seen = read_video(proxy, Screenplay.load(), None, None)
        # interleaving two frames a picture leaves the boxed source 6 pictures a second: two proxy frames' slack
        slack = 2 / 6 + 0.01
        assert abs(seen.start_s - start) <= slack and abs(seen.end_s - end) <= slack, (start, end, seen)
        assert seen.heard
        frames = sample_frames(Media(path=proxy, sha256="-"), fps=1.0, max_frames=16)
        assert abs(read_frames(frames.images).start_s - seen.start_s) <= 0.01
