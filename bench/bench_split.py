"""Split benchmark: the whole split step of one video (probe, shots, speech, all proxies) against the time ffmpeg
alone needs to decode the same file at the analysis resolution, measured side by side in one run.

    python bench/bench_split.py            # a generated 10-minute 720p film (cached under ~/.cache/v2s-bench)
    python bench/bench_split.py --long     # also a 60-minute 1080p film (six copies of a 10-minute one, joined)
    python bench/bench_split.py --film PATH --max-segment-s 300

The two measurements alternate (decode, split, decode, split, …) and the best of each is kept, so a busy machine
slows both alike. Figures, not assertions; the target is a ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotator.media import ffmpeg_exe, probe  # noqa: E402
from annotator.schemas.provenance import Provenance  # noqa: E402
from workers.splitter import ProxyBatch, SplitSettings, split_video  # noqa: E402
from workers.splitter.decode import analysis_size  # noqa: E402

# the test films' looks without the Mandelbrot set, which takes longer to render at 1080p than to encode
LOOKS = [
    "gradients=s={size}:r={fps}:c0=0x2040a0:c1=0xe0c060:c2=0x102010:n=3:speed=0.015:seed=11",
    "testsrc2=s={size}:r={fps}",
    "gradients=s={size}:r={fps}:c0=0xa02020:c1=0x20a0a0:n=2:speed=0.02:seed=5",
    "gradients=s={size}:r={fps}:c0=0x303030:c1=0xf0f0f0:c2=0x806020:n=3:speed=0.01:seed=7",
    "gradients=s={size}:r={fps}:c0=0x10a040:c1=0x4010a0:c2=0xf08000:n=3:speed=0.03:seed=3",
]


def make_film(path: Path, minutes: float, size: str) -> Path:
    """Planted shots (cuts, dissolves, fades, flashes) over a music bed with a line of speech every 9 s."""
    from tests.splitter.films import dialogue_track, planted_film

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    shots = round(minutes * 60 / 6.8)
    with tempfile.TemporaryDirectory() as tmp:
        track = dialogue_track(Path(tmp) / "track.m4a", shots * 6.8 + 5)
        partial = path.with_suffix(".partial.mp4")
        planted_film(partial, shots=shots, size=size, looks=LOOKS, audio=track, crf=23)
        partial.replace(path)
    return path


def long_film(path: Path, minutes: int, size: str, part_minutes: int = 10) -> Path:
    """A long film as copies of one `part_minutes` film joined without re-encoding (generating an hour of planted
    shots in one filter graph takes longer than benchmarking it); every joint is a hard cut."""
    if path.exists():
        return path
    part = make_film(path.with_name(f"{path.stem}_part{part_minutes}.mp4"), part_minutes, size)
    copies = path.with_suffix(".txt")
    copies.write_text(f"file '{part.name}'\n" * max(1, round(minutes / part_minutes)))
    partial = path.with_suffix(".partial.mp4")
    cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "concat", "-safe", "0"]
    subprocess.run([*cmd, "-i", str(copies), "-c", "copy", str(partial)], check=True)
    partial.replace(path)
    copies.unlink()
    return path


def ffmpeg_decode(film: Path) -> float:
    """ffmpeg alone: every video frame decoded and scaled to the analysis size, nothing else."""
    info = probe(film)
    width, height = analysis_size(info.width, info.height, 1, SplitSettings().shots.analysis_width)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-threads", "0", "-i", str(film)]
    cmd += ["-map", "0:v:0", "-vf", f"scale={width}:{height}", "-f", "null", "-"]
    began = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - began


def split_step(film: Path, max_segment_s: float) -> dict[str, float]:
    """What prepare_video does to a new video: probe, split, every proxy cut."""
    settings = SplitSettings()
    scratch = Path(tempfile.mkdtemp(prefix="v2s-bench-split-"))
    began = time.perf_counter()
    info = probe(film)
    probed = time.perf_counter()
    result = split_video(film, info, max_segment_s, settings, workdir=scratch)
    planned = time.perf_counter()
    tags = [
        Provenance(
            video_id="bench", source_uri=str(film), segment_index=p.idx, start_s=p.start_s, end_s=p.end_s
        )
        for p in result.plans
    ]
    out = Path(tempfile.mkdtemp(prefix="v2s-bench-proxies-"))
    try:
        with ProxyBatch(
            film, tags, settings.proxy, result.transform, info.has_audio, result.intermediate
        ) as batch:
            for tag in tags:
                batch.make(tag.segment_index, out / f"seg_{tag.segment_index:04d}.mp4")
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    done = time.perf_counter()
    return {
        "probe": probed - began,
        "analyse": result.seconds["analyse"],
        "plan": result.seconds["plan"],
        "proxies": done - planned,
        "total": done - began,
        "segments": len(result.plans),
        "cuts": len(result.cuts),
        "from_intermediate": float(batch.from_intermediate),
    }


def bench(film: Path, max_segment_s: float, rounds: int) -> None:
    info = probe(film)
    size_mb = film.stat().st_size / 1e6
    print(
        f"\n{film.name}: {info.duration_s:.0f} s, {info.width}x{info.height} {info.video_codec} @ {info.fps:g} fps, {size_mb:.0f} MB"
    )
    decodes, splits = [], []
    for _ in range(rounds):
        decodes.append(ffmpeg_decode(film))
        splits.append(split_step(film, max_segment_s))
    decode = min(decodes)
    best = min(splits, key=lambda s: s["total"])
    print(
        f"  ffmpeg decode at analysis size: {decode:7.1f} s   (runs: {', '.join(f'{d:.1f}' for d in decodes)})"
    )
    print(
        f"  split step:                     {best['total']:7.1f} s   = probe {best['probe']:.1f} + analyse (shots, "
        f"speech) {best['analyse']:.1f} + plan {best['plan']:.2f} + proxies {best['proxies']:.1f}"
    )
    picture = "the analysis pass's intermediate" if best["from_intermediate"] else "the source"
    print(f"  {best['segments']} segments, {best['cuts']} cuts; proxy pictures cut from {picture}")
    print(
        f"  ratio split / decode: {best['total'] / decode:.2f}   (analyse alone: {best['analyse'] / decode:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--film", type=Path, help="benchmark this file instead of the generated films")
    parser.add_argument("--long", action="store_true", help="also the 60-minute 1080p film")
    parser.add_argument("--max-segment-s", type=float, default=300.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "v2s-bench")
    args = parser.parse_args()
    films = [args.film] if args.film else [make_film(args.cache / "film_10min_720p.mp4", 10, "1280x720")]
    if args.long and not args.film:
        films.append(long_film(args.cache / "film_60min_1080p.mp4", 60, "1920x1080"))
    for film in films:
        bench(film, args.max_segment_s, args.rounds)


if __name__ == "__main__":
    main()
