"""`v2s demo`: the whole engine on embedded defaults, with the simulator standing in for the paid models."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console


def run_demo(out: Path, max_segment_s: float, console: Console, imperfection: float = 0.3) -> int:
    from annotator.simulator.film import render_sample
    from annotator.simulator.screenplay import Screenplay
    from annotator.simulator.server import SimulatorServer
    from jobs.report import print_summary
    from jobs.runner import JobSpec, run_job
    from profiles_db.db import Database

    out = out.resolve()
    started = time.monotonic()
    console.rule("v2s demo")
    film, screenplay_path = render_sample(out / "film")
    console.print(
        f"sample film: {film} ({film.stat().st_size / 1e6:.1f} MB), ground truth: {screenplay_path}"
    )
    saved = dict(os.environ)  # the simulator's settings hold for this job only (a caller's own stay theirs)
    try:
        with SimulatorServer(Screenplay.load(screenplay_path), imperfection=imperfection) as server:
            base = server.base_url
            # The same settings a user sets for a proxy, Vertex or vLLM: only the base URLs and keys differ.
            os.environ.update(
                {
                    "V2S_GEMINI_BASE_URL": base,
                    "V2S_GEMINI_API_KEY": "sim-demo-key",
                    "V2S_OPENAI_BASE_URL": f"{base}/v1",
                    "V2S_OPENAI_API_KEY": "sim-demo-key",
                }
            )
            console.print(f"simulator: {base} (Gemini REST + OpenAI chat completions)")
            spec = JobSpec(source=str(film), out=out / "run", max_segment_s=max_segment_s)
            job_id, summary = run_job(spec, console)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    db = Database(spec.db_url())
    print_summary(console, job_id, summary, db, str(spec.out))
    _score(console, screenplay_path, spec.out / "shards")
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 1 if summary.failed_videos or summary.stage_failures else 0


def _score(console: Console, ground_truth: Path, shards: Path) -> None:
    """Score the demo output against the film's screenplay: the same call as `v2s eval --gt … --pred …`."""
    from evaluation import evaluate_dataset
    from evaluation.report import print_tables

    console.rule("V2S metrics: demo output vs. the sample film's screenplay (lexical judge)")
    print_tables(evaluate_dataset(ground_truth, shards), console)
