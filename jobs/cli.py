"""The `v2s` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="v2s: long-form video to script data engine."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")


def _register_profiles() -> None:
    from jobs.profiles_cli import app as profiles_app

    app.add_typer(profiles_app, name="profiles")


_register_profiles()
console = Console()


@app.command()
def run(
    source: Annotated[
        str, typer.Argument(help="a video file, a folder, a glob, or a manifest (.csv/.jsonl)")
    ],
    out: Annotated[Path, typer.Option(help="output folder (shards, manifest, proxies, default database)")],
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL; default OUT/v2s.sqlite")] = None,
    max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray")] = None,
) -> None:
    """Annotate every video of SOURCE on an embedded Ray; exit status 1 when some inputs failed."""
    from jobs.report import print_summary
    from jobs.runner import JobSpec, run_job
    from jobs.sources import SourceError
    from profiles_db.db import Database

    spec = JobSpec(
        source=source, out=out, database_url=database_url, max_segment_s=max_segment_s, num_cpus=num_cpus
    )
    try:
        job_id, summary = run_job(spec, console)
    except SourceError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    db = Database(spec.db_url())
    print_summary(console, job_id, summary, db, str(out))
    if summary.failed_videos or summary.stage_failures:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path("v2s-demo"),
    max_segment_s: Annotated[float, typer.Option(help="segment length for the demo film")] = 60.0,
    imperfection: Annotated[
        float, typer.Option(help="how far the simulated models drift from the truth")
    ] = 0.3,
) -> None:
    """Render the sample film, start the simulator, run the pipeline against it and score the result."""
    from jobs.demo import run_demo

    raise typer.Exit(run_demo(out, max_segment_s, console, imperfection))


@app.command("sample-film")
def sample_film(
    out: Annotated[Path, typer.Option(help="folder for the film and its screenplay")],
    screenplay: Annotated[
        Path | None, typer.Option(help="screenplay JSON (default: the bundled one)")
    ] = None,
) -> None:
    """Render a screenplay into an MP4 with ffmpeg (the ground truth for the simulator and `v2s eval`)."""
    from annotator.simulator.film import render_sample

    film, play = render_sample(out, screenplay)
    console.print(f"film: {film}\nscreenplay: {play}")


@app.command("sim-server")
def sim_server(
    screenplay: Annotated[
        Path | None, typer.Option(help="screenplay JSON (default: the bundled one)")
    ] = None,
    host: Annotated[str, typer.Option(help="bind address (loopback)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8765,
    imperfection: Annotated[
        float, typer.Option(help="0 = exact answers; 0.3 = drifts like a real model")
    ] = 0.0,
) -> None:
    """Serve the Gemini and OpenAI APIs from a screenplay, for tests and demos (never for production)."""
    from annotator.simulator.server import serve

    serve(screenplay, host, port, imperfection)


@app.command()
def schema(
    name: Annotated[
        str, typer.Argument(help="plot-first, plot-next, script, thinking, record, character-context")
    ],
) -> None:
    """Print a JSON Schema."""
    from annotator.schemas import SCHEMAS, json_schema

    if name not in SCHEMAS:
        console.print(f"[red]unknown schema {name!r}[/red]; choose one of: {', '.join(SCHEMAS)}")
        raise typer.Exit(2)
    sys.stdout.write(json.dumps(json_schema(name), indent=2) + "\n")


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default $V2S_DATABASE_URL)")] = None,
) -> None:
    """Apply all Alembic migrations."""
    from profiles_db.db import upgrade

    target = url or os.environ.get("V2S_DATABASE_URL")
    if not target:
        console.print("[red]give --url or set V2S_DATABASE_URL[/red]")
        raise typer.Exit(2)
    upgrade(target)
    console.print("database is at the latest schema")


def _register_eval() -> None:
    try:
        from evaluation.cli import eval_command
    except ImportError:  # evaluation is optional at import time; the command explains itself
        return
    app.command("eval", help="Score scripts against ground truth with the V2S metrics.")(eval_command)


_register_eval()


def _db_for(out: Path | None, database_url: str | None):
    from jobs.runner import JobSpec
    from profiles_db.db import Database

    if out is None and not database_url and not os.environ.get("V2S_DATABASE_URL"):
        console.print("[red]give --out or --database-url (or set V2S_DATABASE_URL)[/red]")
        raise typer.Exit(2)
    return Database(JobSpec(source="", out=out or Path("."), database_url=database_url).db_url())


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="job id (default: all jobs)")] = None,
    out: Annotated[Path | None, typer.Option(help="the job's output folder (finds OUT/v2s.sqlite)")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None,
) -> None:
    """Progress per stage, failures with their reasons, tokens and cost."""
    from rich.table import Table
    from sqlalchemy import select

    from profiles_db.models import Job, Segment, StageRun, Video
    from profiles_db.stages import StageStore

    db = _db_for(out, database_url)
    store = StageStore(db)
    table = Table(title=f"v2s status {job or '(all jobs)'}")
    for column in ("stage", "pending", "running", "done", "failed", "rejected"):
        table.add_column(column)
    progress = store.progress(job)
    for stage in ("plot", "script", "distill", "export"):
        counts = progress.get(stage, {})
        table.add_row(
            stage, *(str(counts.get(k, 0)) for k in ("pending", "running", "done", "failed", "rejected"))
        )
    console.print(table)
    usage = store.usage(job)
    console.print(
        f"tokens {usage['input_tokens']:,} in / {usage['output_tokens']:,} out, cost ${usage['cost_usd']:.4f}"
    )
    with db.sessions() as s:
        jobs = s.scalars(select(Job).order_by(Job.created_at)).all()
        videos = s.execute(select(Video.uri, Video.error).where(Video.status == "failed")).all()
        failures = s.execute(
            select(Video.uri, Segment.idx, StageRun.stage, StageRun.status, StageRun.error)
            .join(Segment, Segment.id == StageRun.segment_id)
            .join(Video, Video.id == Segment.video_id)
            .where(StageRun.status.in_(["failed", "rejected"]))
        ).all()
    for j in jobs:
        console.print(f"job {j.id}: {j.status} ({j.source})")
    for uri, error in videos:
        console.print(f"[red]input failed[/red] {uri}: {error}")
    for uri, idx, stage, st, error in failures:
        console.print(f"[yellow]{st}[/yellow] {uri} segment {idx} {stage}: {error}")
