"""`v2s demo`: the whole engine on embedded defaults, with the simulator standing in for the paid models."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console


def run_demo(out: Path, max_segment_s: float, console: Console, imperfection: float = 0.3) -> int:
    from annotator.settings import ModelSettings
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
    with SimulatorServer(Screenplay.load(screenplay_path), imperfection=imperfection) as server, _demo_ray():
        base = server.base_url
        # The same settings a user sets for a proxy, Vertex or vLLM: only the base URLs and keys differ. They
        # are the demo job's alone: the caller's environment is left as it was.
        models = ModelSettings(
            gemini_base_url=base,
            openai_base_url=f"{base}/v1",
            gemini_api_key=DEMO_KEY,
            openai_api_key=DEMO_KEY,
        )
        console.print(f"simulator: {base} (Gemini REST + OpenAI chat completions)")
        spec = JobSpec(source=str(film), out=out / "run", max_segment_s=max_segment_s)
        job_id, summary = run_job(spec, console, models=models)
    db = Database(spec.db_url())
    print_summary(console, job_id, summary, db, str(spec.out))
    _score(console, screenplay_path, spec.out / "shards")
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 1 if summary.failed_videos or summary.stage_failures else 0


DEMO_KEY = "sim-demo-key"  # the simulator's; no secret


@contextmanager
def _demo_ray() -> Iterator[None]:
    """A local Ray for the demo job. Its workers read the model keys from their own environment, never from the
    job, so the simulator's key reaches them through this Ray's runtime_env instead of the caller's environment.
    A Ray this process already joined is used as it is (its workers need a key of their own: any will do)."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(
        address="local",
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
        runtime_env={"env_vars": {"V2S_GEMINI_API_KEY": DEMO_KEY, "V2S_OPENAI_API_KEY": DEMO_KEY}},
    )
    try:
        yield
    finally:
        ray.shutdown()


def _score(console: Console, ground_truth: Path, shards: Path) -> None:
    """Score the demo output against the film's screenplay: the same call as `v2s eval --gt … --pred …`."""
    from evaluation import evaluate_dataset
    from evaluation.report import print_tables

    console.rule("V2S metrics: demo output vs. the sample film's screenplay (lexical judge)")
    print_tables(evaluate_dataset(ground_truth, shards), console)
