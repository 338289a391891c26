"""Cost benchmark: the same N-video job against the simulator at the standard tier, with the plot and script
stages on Flex, with each segment's video in a context cache between its plot and script calls, and both,
side by side from one run; and `v2s plan`'s prediction of the standard run.

    python bench/bench_cost.py --videos 20 --clip-s 40 --num-cpus 2

Prints per mode: dollars, dollars per video-hour, wall time, model calls (as the simulator counted them),
records, and whether the records equal the standard run's (same ids, same scripts; the simulator answers at
imperfection 0). The standard mode is planned first: a 2-video calibration run in the same database gives
the plan its measured sizes, then `v2s plan` prices the N videos, and the run reports what they cost.
Flex answers `--flex-delay-s` later and every `--shed-every`-th Flex request is shed (503), as the real tier
may. Batch sends every stage through the simulator's batch APIs (a batch is done a fraction of a second
after it is made, so its wall time says nothing of the real tier's hours; the calls column counts answered
batch items too). The price table gives DeepSeek no batch discount (its API has no batch endpoint), so the
distillation costs the same at every tier. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLEX = {"V2S_PLOT_TIER": "flex", "V2S_SCRIPT_TIER": "flex"}
CACHE = {"V2S_CONTEXT_CACHE": "1"}
BATCH = {
    "V2S_PLOT_TIER": "batch",
    "V2S_SCRIPT_TIER": "batch",
    "V2S_DISTILL_TIER": "batch",
    "V2S_BATCH_POLL_S": "0.3",
}
MODES = {
    "standard": {},
    "flex": FLEX,
    "caching": CACHE,
    "flex+caching": {**FLEX, **CACHE},
    "batch": BATCH,
    "batch+caching": {**BATCH, **CACHE},
}
ANSWERS = ("generateContent", "chat.completions", "batch.generateContent", "batch.chat.completions")


def _child(action: str, source: str, out: str, db: str, num_cpus: int) -> None:
    """One plan or run in this fresh process; prints one JSON line."""
    from rich.console import Console

    from jobs.plan import PlanOptions, plan_job
    from jobs.runner import JobSpec, run_job
    from profiles_db.db import Database
    from profiles_db.stages import StageStore

    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - progress bars are not figures
    spec = JobSpec(source=source, out=Path(out), database_url=db, max_segment_s=60, num_cpus=num_cpus)
    started = time.perf_counter()
    if action == "plan":
        plan = plan_job(spec, PlanOptions(), quiet)
        print(json.dumps({"wall_s": time.perf_counter() - started, "plan": plan.model_dump(mode="json")}))
        return
    job_id, summary = run_job(spec, quiet)
    usage = StageStore(Database(db)).usage_breakdown(job_id)
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "records": summary.records_written,
                "segments": summary.segments,
                "stage": usage["stage"],
                "tier": usage["tier"],
            }
        )
    )


def _records(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]
    return {r["id"]: json.dumps(r["script"], sort_keys=True) for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--clip-s", type=float, default=40.0, help="length of each video (one segment)")
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--flex-delay-s", type=float, default=0.3, help="extra seconds a Flex answer takes")
    parser.add_argument("--shed-every", type=int, default=7, help="every n-th Flex request is shed (0: none)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--distill-model",
        default="",
        help="distil with this Gemini model (e.g. gemini-3.8-flash) in every mode instead of DeepSeek",
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated modes to run (standard always runs first)"
    )
    parser.add_argument("--child", nargs=4, metavar=("ACTION", "SOURCE", "OUT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, args.num_cpus)
        return

    from bench_jobs import distinct_copies  # this folder is on sys.path: the script's own

    from annotator.simulator.film import render_film
    from annotator.simulator.flex import FlexPlay
    from annotator.simulator.screenplay import Screenplay
    from annotator.simulator.server import SimulatorServer

    work = args.workdir or Path(tempfile.mkdtemp(prefix="v2s-bench-cost-"))
    clip = work / "clip.mp4"
    if not clip.exists():
        render_film(Screenplay.load(), clip, width=320, height=180, fps=8, until_s=args.clip_s)
    source = distinct_copies(clip, args.videos, work / "videos", "ep")
    calibration = distinct_copies(clip, 2, work / "calibration", "cal")
    hours = args.videos * args.clip_s / 3600
    wanted = {"standard", *args.modes.split(",")}
    unknown = wanted - set(MODES)
    if unknown:
        sys.exit(f"--modes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
    modes = {m: t for m, t in MODES.items() if m in wanted}
    flex = FlexPlay(delay_s=args.flex_delay_s, shed_every=args.shed_every)
    rows: dict[str, dict] = {}
    with SimulatorServer(Screenplay.load(), flex=flex) as server:
        base_env = {
            **os.environ,
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": "sim-bench-key",
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": "sim-bench-key",
            "PYTHONPATH": str(ROOT),
            # the videos are copies of one clip: with the response cache on, every distillation after the
            # first would be answered from it (the same prompt) and the call counts would say little
            "V2S_RESPONSE_CACHE": "0",
        }
        if args.distill_model:  # the distillation on a Gemini model too, so that it has a batch tier
            base_env.update({"V2S_DISTILL_BACKEND": "gemini", "V2S_DISTILL_MODEL": args.distill_model})

        def child(action: str, src: Path, out: Path, db: str, env: dict) -> dict:
            cmd = [sys.executable, __file__, "--num-cpus", str(args.num_cpus), "--child", action]
            done = subprocess.run(
                [*cmd, str(src), str(out), db], env=env, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                sys.exit(f"{action} {out} failed:\n{done.stderr[-4000:]}")
            return json.loads(done.stdout.strip().splitlines()[-1])

        for mode, tiers in modes.items():
            db = f"sqlite:///{work / f'{mode}.sqlite'}"
            env = {**base_env, **tiers}
            if mode == "standard":
                child("run", calibration, work / "out-calibration", db, env)
                rows["plan"] = child("plan", source, work / f"out-{mode}", db, env)
            calls = len(server.requests)  # an index into the log of every request
            batches = server.batches.created
            row = child("run", source, work / f"out-{mode}", db, env)
            row["model_calls"] = sum(1 for r in server.requests[calls:] if r.endpoint in ANSWERS)
            row["batches"] = server.batches.created - batches
            row["cost"] = sum(s["cost_usd"] for s in row["stage"].values())
            row["records_by_id"] = _records(work / f"out-{mode}")
            rows[mode] = row
        sheds = flex.sheds
        made, left = server.caches.created, len(server.caches.live())

    standard = rows["standard"]
    distiller = (
        f"gemini/{args.distill_model}" if args.distill_model else "the default (openai/deepseek-flash)"
    )
    print(
        f"{args.videos} videos × {args.clip_s:g} s ({hours:.3f} video-hours), num_cpus={args.num_cpus}, "
        f"distillation on {distiller}"
    )
    head = f"{'mode':<14}{'$':>10}{'$/video-h':>12}{'wall s':>9}{'calls':>7}{'batches':>9}{'records':>9}"
    print(f"{head}  same records")
    for mode in modes:
        row = rows[mode]
        same = row["records_by_id"] == standard["records_by_id"]
        print(
            f"{mode:<14}{row['cost']:>10.4f}{row['cost'] / hours:>12.2f}{row['wall_s']:>9.1f}"
            f"{row['model_calls']:>7}{row['batches']:>9}{row['records']:>9}  {same}"
        )
    ratios = ", ".join(f"{m} {rows[m]['cost'] / standard['cost']:.3f}" for m in modes if m != "standard")
    print(f"cost / standard: {ratios}; Flex sheds: {sheds}; context caches made {made}, left {left}")
    plan = rows["plan"]["plan"]
    real_in = sum(s["input_tokens"] for s in standard["stage"].values())
    real_out = sum(s["output_tokens"] for s in standard["stage"].values())
    print(
        f"plan of the standard run: ${plan['total']['cost_usd']['standard']:.4f} predicted vs "
        f"${standard['cost']:.4f} spent ({plan['total']['cost_usd']['standard'] / standard['cost']:.3f}×); "
        f"tokens in {plan['total']['input_tokens'] / real_in:.3f}×, out {plan['total']['output_tokens'] / real_out:.3f}×; "
        f"the plan's prices for the other tiers: flex ${plan['total']['cost_usd']['flex']:.4f}, "
        f"caching ${plan['total']['cached_cost_usd']['standard']:.4f}, batch ${plan['total']['cost_usd']['batch']:.4f}, "
        f"batch + caching ${plan['total']['cached_cost_usd']['batch']:.4f}"
    )
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
