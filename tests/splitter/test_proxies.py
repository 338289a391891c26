"""Proxies: all of a video's segments from one ffmpeg run; interlaced sources deinterlaced, anamorphic ones
widened to square pixels, letterbox bars cropped, and each transform recorded in the proxy's tag."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from annotator.media import ffmpeg_exe, probe, read_provenance, read_transform
from annotator.schemas.provenance import Provenance
from tests.support.media import color_film
from workers.splitter import ProxyBatch, SplitSettings, split_video
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


def test_interlaced_anamorphic_letterboxed_source(boxed, tmp_path):
    result = split_video(boxed, probe(boxed), 60.0)
    transform = result.transform
    assert transform.deinterlace and transform.sar == Fraction(4, 3)
    crop = transform.crop
    assert crop is not None and (crop.x, crop.width) == (0, 320)
    assert abs(crop.y - 52) <= 4 and abs(crop.y + crop.height - 188) <= 4, crop
    settings = SplitSettings().proxy
    tags = _tags(boxed, [(p.start_s, p.end_s) for p in result.plans])
    with ProxyBatch(boxed, tags, settings, transform, True) as batch:
        proxy = batch.make(1, tmp_path / "seg.mp4")
    info = probe(proxy)
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
    result = split_video(boxed, probe(boxed), 60.0)
    tags = _tags(boxed, [(p.start_s, p.end_s) for p in result.plans])
    with ProxyBatch(boxed, tags, SplitSettings().proxy, result.transform, True) as batch:
        proxy = batch.make(1, tmp_path / "seg.mp4")

    def comb(path: Path) -> float:
        with av.open(str(path)) as container:
            frames = [
                f.to_ndarray(format="gray").astype(np.int16)
                for _, f in zip(range(8), container.decode(video=0), strict=False)
            ]
        return float(np.mean([np.abs(np.diff(f[40:120], axis=0)).mean() for f in frames]))

    assert comb(proxy) < comb(boxed)
