"""`v2s run`: one job over a SOURCE on a Ray (embedded by default), with progress and a summary."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

import ray
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from annotator.settings import ModelSettings
from jobs.sources import list_sources
from profiles_db.db import Database, sqlite_url
from profiles_db.stages import StageStore
from workers.context import RunContext
from workers.driver import RunSummary, run_pipeline


class JobSpec(BaseModel):
    source: str
    out: Path
    database_url: str | None = None
    max_segment_s: float = 300.0
    ray_address: str | None = None
    num_cpus: int | None = None
    context_token_budget: int = 4000
    shard_max_records: int = 1000

    def db_url(self) -> str:
        return self.database_url or os.environ.get("V2S_DATABASE_URL") or sqlite_url(self.out / "v2s.sqlite")


def run_job(spec: JobSpec, console: Console | None = None) -> tuple[str, RunSummary]:
    console = console or Console()
    spec.out.mkdir(parents=True, exist_ok=True)
    videos = list_sources(spec.source)
    db_url = spec.db_url()
    db = Database(db_url)
    job_id = "job-" + uuid.uuid4().hex[:10]
    StageStore(db).ensure_job(
        job_id, spec.source, str(spec.out), spec.model_dump(mode="json", exclude={"database_url"})
    )
    ctx = RunContext(
        job_id=job_id,
        db_url=db_url,
        out_dir=str(spec.out.resolve()),
        max_segment_s=spec.max_segment_s,
        context_token_budget=spec.context_token_budget,
        shard_max_records=spec.shard_max_records,
    )
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=spec.ray_address,
            num_cpus=spec.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bars = {
                "prepared": progress.add_task("split videos", total=len(videos)),
                "plot": progress.add_task("plot reasoning", total=None),
                "annotate": progress.add_task("script + thinking", total=None),
            }

            def on_event(kind: str, data: dict) -> None:
                if kind == "chain":
                    for name in ("plot", "annotate"):
                        total = progress.tasks[bars[name]].total or 0
                        progress.update(bars[name], total=total + data["segments"])
                elif kind in bars:
                    progress.advance(bars[kind])

            summary = run_pipeline(ctx, videos, on_event)
        StageStore(db).finish_job(job_id, "failed" if summary.failed_videos else "done")
        return job_id, summary
    finally:
        if started_here:
            ray.shutdown()
        db.dispose()


def model_summary() -> dict[str, str]:
    s = ModelSettings()
    return {
        "plot": f"{s.plot_backend}:{s.plot_model}",
        "script": f"{s.script_backend}:{s.script_model}",
        "distill": f"{s.distill_backend}:{s.distill_model}",
    }
