"""Job-layer benchmark: N short videos through the whole engine (embedded Ray, SQLite, real ffmpeg, real SDKs over
HTTP) against the simulator answering at a fixed latency; prints throughput, scheduler overhead per segment and
the driver's peak memory, at several sizes, and extrapolates by a least-squares line to the paper's scale
(10,000 videos, 45,000 segments).

    python bench/bench_jobs.py --sizes 100,300,1000 --latency-s 0.2 --num-cpus 2

Videos are stream copies of one short clip rendered once and cached in a temp folder, each with its own title
(so its own file, video id, scope and segment). Every size runs in a fresh child process, so the child's
peak RSS is the driver's own (the simulator runs in this parent process). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAPER_VIDEOS, PAPER_SEGMENTS = 10_000, 45_000
CALLS_PER_SEGMENT = 3  # plot reasoning, script, thinking distillation


def _clip(seconds: float) -> Path:
    """One short clip of the sample film (the simulator answers from its screenplay), rendered once."""
    from annotator.simulator.film import render_film
    from annotator.simulator.screenplay import Screenplay

    cache = Path(tempfile.gettempdir()) / "v2s-bench"
    clip = cache / f"clip-{seconds:g}s.mp4"
    if not clip.exists():
        render_film(Screenplay.load(), clip, width=320, height=180, fps=8, until_s=seconds)
    return clip


def distinct_copies(clip: Path, n: int, folder: Path, prefix: str = "video") -> Path:
    """n distinct files of the clip: a stream copy with its own title, because the engine takes two paths to
    one file (a hard link, a symlink, a byte-identical copy) for one video, processed once."""
    from annotator.media import ffmpeg_exe

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        video = folder / f"{prefix}_{i:05d}.mp4"
        if not video.exists():
            copy = ["-c", "copy", "-metadata", f"title={prefix}{i}", str(video)]
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), *copy], check=True)
    return folder


def _child(source: str, out: str, num_cpus: int) -> None:
    """One job in this (fresh) process; prints one JSON line of figures."""
    from rich.console import Console

    from jobs.runner import JobSpec, run_job

    started = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    _, summary = run_job(
        JobSpec(source=source, out=Path(out), max_segment_s=60, num_cpus=num_cpus),
        Console(file=open(os.devnull, "w")),  # noqa: SIM115 - the progress bars are not part of the figures
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - cpu_before.ru_utime) + (usage.ru_stime - cpu_before.ru_stime)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "driver_cpu_s": cpu,
                "peak_rss_mb": usage.ru_maxrss / 1024,
                "videos": summary.videos,
                "segments": summary.segments,
                "records": summary.records_written,
                "failed_videos": len(summary.failed_videos),
                "stage_failures": len(summary.stage_failures),
            }
        )
    )


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b·x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,300,1000", help="comma-separated numbers of videos")
    parser.add_argument("--latency-s", type=float, default=0.2, help="simulated model latency per call")
    parser.add_argument("--clip-s", type=float, default=12.0, help="length of each video (one segment)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the embedded Ray")
    parser.add_argument("--workdir", type=Path, default=None, help="where videos and outputs go (temp)")
    parser.add_argument("--child", nargs=2, metavar=("SOURCE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.num_cpus)
        return

    from annotator.simulator.behaviours import Behaviours, Fault
    from annotator.simulator.screenplay import Screenplay
    from annotator.simulator.server import SimulatorServer

    class FixedLatency(Behaviours):
        """Every model call takes `latency` seconds, like a remote model that is never overloaded."""

        def __init__(self, latency: float) -> None:
            self.latency = latency

        def before_answer(self, request):
            del request
            return Fault(delay_s=self.latency)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="v2s-bench-jobs-"))
    clip = _clip(args.clip_s)
    rows = []
    with SimulatorServer(Screenplay.load(), behaviours=FixedLatency(args.latency_s)) as server:
        env = {
            **os.environ,
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-bench-key",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-bench-key",
            "PYTHONPATH": str(ROOT),
        }
        for n in sizes:
            source = distinct_copies(clip, n, work / f"videos-{n}")
            out = work / f"out-{n}"
            calls_before = server.request_count()
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--num-cpus",
                    str(args.num_cpus),
                    "--child",
                    str(source),
                    str(out),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.exit(f"size {n} failed:\n{done.stderr[-4000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["n"] = n
            row["model_calls"] = server.request_count() - calls_before
            rows.append(row)
            seg = max(row["segments"], 1)
            print(
                f"N={n:>6} videos  segments={row['segments']:>6}  records={row['records']:>6}  "
                f"failures={row['failed_videos'] + row['stage_failures']}  wall={row['wall_s']:.1f}s  "
                f"throughput={row['segments'] / row['wall_s']:.2f} seg/s  "
                f"driver CPU/segment={1000 * row['driver_cpu_s'] / seg:.1f} ms  "
                f"wall/segment={1000 * row['wall_s'] / seg:.0f} ms  "
                f"model calls={row['model_calls']}  peak driver RSS={row['peak_rss_mb']:.0f} MB",
                flush=True,
            )

    segments = [float(r["segments"]) for r in rows]
    print(
        f"\nmodel latency {args.latency_s:.2f} s/call, {CALLS_PER_SEGMENT} calls/segment, num_cpus={args.num_cpus}"
    )
    if len(rows) >= 2:
        a_wall, b_wall = _fit(segments, [r["wall_s"] for r in rows])
        a_cpu, b_cpu = _fit(segments, [r["driver_cpu_s"] for r in rows])
        a_rss, b_rss = _fit([float(r["n"]) for r in rows], [r["peak_rss_mb"] for r in rows])
        print(f"fit wall       = {a_wall:.1f} s + {1000 * b_wall:.1f} ms × segments")
        print(f"fit driver CPU = {a_cpu:.1f} s + {1000 * b_cpu:.2f} ms × segments   (scheduler overhead)")
        print(f"fit peak RSS   = {a_rss:.0f} MB + {1024 * b_rss:.1f} KB × videos")
        wall = a_wall + b_wall * PAPER_SEGMENTS
        print(
            f"extrapolated to {PAPER_VIDEOS:,} videos / {PAPER_SEGMENTS:,} segments on this machine: "
            f"wall ≈ {wall / 3600:.1f} h ({PAPER_SEGMENTS / wall:.2f} seg/s), "
            f"driver CPU ≈ {(a_cpu + b_cpu * PAPER_SEGMENTS) / 60:.0f} min, "
            f"peak driver RSS ≈ {a_rss + b_rss * PAPER_VIDEOS:.0f} MB"
        )
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
