"""The `v2s` command line."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jobs.settings import EngineSettings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="v2s: long-form video to script data engine."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")

# demo, sample film and simulator: for trying and testing the engine, never part of a production run
DEV_PANEL = "Developer tools"


def _register_profiles() -> None:
    from jobs.profiles_cli import app as profiles_app

    app.add_typer(profiles_app, name="profiles")


_register_profiles()
console = Console()


def _refusals() -> tuple[type[BaseException], ...]:
    """What the CLI edge turns into one clear line and exit status 2 instead of a traceback."""
    from jobs.runner import JobRefused
    from profiles_db.outputs import OutputBusy
    from workers.verify import OutputDamaged

    return (JobRefused, OutputBusy, OutputDamaged)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@app.command()
def run(
    source: Annotated[
        str, typer.Argument(help="a video file, a folder, a glob, or a manifest (.csv/.jsonl)")
    ],
    # str, not Path: a Path turns s3://bucket/x into s3:/bucket/x before anything can see the URI
    out: Annotated[
        str,
        typer.Option(
            help="output folder or bucket URI (shards, manifest, proxies; default database if local)"
        ),
    ],
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL; default OUT/v2s.sqlite")] = None,
    max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray")] = None,
    job_id: Annotated[str | None, typer.Option(hidden=True, help="set by `v2s submit`")] = None,
) -> None:
    """Annotate every video of SOURCE on an embedded Ray; exit status 1 when some inputs failed."""
    from jobs.report import print_summary
    from jobs.runner import JobSpec, run_job
    from jobs.sources import SourceError
    from profiles_db.db import Database

    spec = JobSpec(
        source=source, out=out, database_url=database_url, max_segment_s=max_segment_s, num_cpus=num_cpus
    )
    from annotator.gateway.base import ModelCallError

    try:
        job_id, summary = run_job(spec, console, job_id=job_id)
    except SourceError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except ModelCallError as exc:  # missing or refused credentials: one line naming the variable to set
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except _refusals() as exc:  # busy or damaged output, unusable database, Ray that will not start
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    db = Database(spec.db_url())
    print_summary(console, job_id, summary, db, str(spec.out))
    if summary.failed_videos or summary.stage_failures:
        raise typer.Exit(1)


@app.command(rich_help_panel=DEV_PANEL)
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


@app.command("sample-film", rich_help_panel=DEV_PANEL)
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


@app.command("sim-server", rich_help_panel=DEV_PANEL)
def sim_server(
    screenplay: Annotated[
        Path | None, typer.Option(help="screenplay JSON (default: the bundled one)")
    ] = None,
    host: Annotated[str, typer.Option(help="bind address (loopback)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8765,
    imperfection: Annotated[
        float, typer.Option(help="0 = exact answers; 0.3 = drifts like a real model")
    ] = 0.0,
    faults: Annotated[
        Path | None, typer.Option(help="scenario JSON file of fault rules (docs/simulator.md)")
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="a fault rule KIND[@STAGE][:TIMES], e.g. rate_limit@script:2 (repeatable)"),
    ] = None,
) -> None:
    """Serve the Gemini and OpenAI APIs from a screenplay, for tests and demos (never for production)."""
    from pydantic import ValidationError

    from annotator.simulator.scenarios import Scenario
    from annotator.simulator.server import serve

    try:
        scenario = Scenario.load(faults) if faults else Scenario()
        scenario = scenario.plus(Scenario.from_flags(fault or []))
    except (OSError, ValueError, ValidationError) as exc:
        console.print(f"[red]bad fault scenario:[/red] {exc}")
        raise typer.Exit(2) from None
    serve(screenplay, host, port, imperfection, scenario if scenario.rules else None)


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

    target = url or EngineSettings().database_url
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


def _db_for(out: str | None, database_url: str | None):
    from jobs.runner import JobSpec
    from workers.storage import is_remote, local_workdir

    explicit = database_url or EngineSettings().database_url
    if out is None and not explicit:
        console.print("[red]give --out or --database-url (or set V2S_DATABASE_URL)[/red]")
        raise typer.Exit(2)
    spec = JobSpec(source="", out=out or Path("."), database_url=database_url)
    if not explicit and is_remote(spec.out):
        # A bucket holds no database: a job writing to one keeps its default SQLite in a local folder of the
        # machine that ran it. Found here only when that was this machine; opening it elsewhere would create
        # an empty database and report "no such job".
        database = local_workdir(spec.out) / "v2s.sqlite"
        if not database.is_file():
            console.print(
                f"[red]error:[/red] --out {spec.out} is a bucket URI: its job's default database is kept on "
                f"the machine that ran it ({database} there), and there is none here; pass --database-url "
                "with the database the job used (or set V2S_DATABASE_URL)",
                soft_wrap=True,
            )
            raise typer.Exit(2)
    from jobs.runner import JobRefused, open_database

    try:
        return open_database(spec.db_url())
    except JobRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="job id (default: all jobs)")] = None,
    out: Annotated[
        str | None, typer.Option(help="the job's output folder or bucket URI (finds its default database)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="refresh until interrupted")] = False,
    every: Annotated[float, typer.Option(help="seconds between refreshes with --watch")] = 2.0,
) -> None:
    """Per stage pending/running/done/failed/rejected, failures with their reasons, tokens and cost, shards."""
    import time

    from rich.live import Live

    from jobs.report import status_view

    db = _db_for(out, database_url)
    if not watch:
        console.print(status_view(db, job))
        return
    with Live(status_view(db, job), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(every)
                live.update(status_view(db, job))
        except KeyboardInterrupt:
            pass


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="job id")],
    out: Annotated[
        str | None, typer.Option(help="the job's output folder or bucket URI (finds its default database)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None,
    only_reason: Annotated[
        list[str] | None,
        typer.Option(
            help="retry only failed stages with this outcome (repeatable): timeout, rate_limited, "
            "server_error, invalid_output, truncated, empty, lost, out_of_order, error, blocked; default: "
            "every outcome but blocked (a deterministic SAFETY/RECITATION block fails the same way again)"
        ),
    ] = None,
    give_up: Annotated[
        list[str] | None,
        typer.Option(
            help="give up the plot of this segment (id or VIDEO_ID:IDX, repeatable): its scope's memory chain "
            "goes on without it and its videos are exported, saying so in meta.memory_gaps"
        ),
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray dashboard URL: resume as a new Ray job on that cluster")
    ] = None,
    ship_code: Annotated[bool, typer.Option(help="with --address: upload this project (working_dir)")] = True,
    forward_secrets: Annotated[
        bool,
        typer.Option(help="also send model/cloud keys in the runtime_env (Ray logs its values on the nodes)"),
    ] = False,
) -> None:
    """Re-run the failed and unfinished stages of JOB (done stages are not redone and call no model)."""
    from jobs.control import ControlError, load_spec, resume_job, submit_job
    from jobs.report import print_summary

    db = _db_for(out, database_url)
    reasons = set(only_reason or []) or None
    try:
        if address:
            submission = submit_job(
                load_spec(db, job),
                address,
                job,
                resume=True,
                ship_code=ship_code,
                forward_secrets=forward_secrets,
                only_reasons=reasons,
                give_up=give_up or [],
            )
            _print_follow(job, submission, address, db.url)
            return
        job_id, summary = resume_job(db, job, console, only_reasons=reasons, give_up=give_up or [])
    except ControlError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except _refusals() as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    spec = load_spec(db, job)
    print_summary(console, job_id, summary, db, str(spec.out))
    if summary.failed_videos or summary.stage_failures:
        raise typer.Exit(1)


@app.command()
def verify(
    out: Annotated[str, typer.Argument(help="the output folder or bucket URI")],
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default OUT/v2s.sqlite)")] = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="rebuild damaged or missing shards and the manifest from the database"),
    ] = False,
) -> None:
    """Check an output against its database: every shard as written, nothing else, the manifest true.

    Exit status 0 when it matches (or was repaired), 1 when something is wrong, 2 when it cannot be repaired."""
    from workers.shards import ShardWriter
    from workers.storage import normalise

    db = _db_for(out, database_url)
    writer = ShardWriter(normalise(out), db, recover=False)
    from workers.verify import verify_output

    report = verify_output(writer, repair=repair)
    for note in report.notes:
        console.print(f"[dim]{escape(note)}[/dim]")
    for finding in report.findings:
        mark = "[green]repaired[/green]" if finding.repaired else "[red]damaged[/red]"
        console.print(f"{mark} {escape(finding.name)}: {escape(finding.problem)}")
    if report.manifest_rewritten:
        done = "rewritten from the database" if repair and report.ok else "does not match the database"
        console.print(f"[yellow]manifest.json[/yellow] {done}")
    console.print(
        f"{report.shards} shards, {report.records} records in the database for {escape(report.out)}"
    )
    if not report.ok:
        raise typer.Exit(2)
    if not report.clean and not repair:
        raise typer.Exit(1)


@app.command()
def submit(
    source: Annotated[str, typer.Argument(help="as for `v2s run`, as seen from the cluster")],
    out: Annotated[str, typer.Option(help="output folder or bucket URI, as seen from the cluster")],
    address: Annotated[str, typer.Option(help="Ray dashboard URL, e.g. http://HEAD:8265")],
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL reachable from the cluster (PostgreSQL)")
    ] = None,
    max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
    ship_code: Annotated[
        bool,
        typer.Option(
            help="upload this project as the job's working_dir (off: v2s is installed on the nodes)"
        ),
    ] = True,
    forward_secrets: Annotated[
        bool,
        typer.Option(help="also send model/cloud keys in the runtime_env (Ray logs its values on the nodes)"),
    ] = False,
) -> None:
    """Submit a job to a Ray cluster (Ray Jobs API); prints the job id and how to follow it."""
    from jobs.control import submit_job
    from jobs.runner import JobSpec, new_job_id

    spec = JobSpec(source=source, out=out, database_url=database_url, max_segment_s=max_segment_s)
    job_id = new_job_id()
    try:
        submission = submit_job(spec, address, job_id, ship_code=ship_code, forward_secrets=forward_secrets)
    except Exception as exc:  # connection refused, 401/403 from token auth: one line, never the token
        console.print(f"[red]submit failed:[/red] {exc}")
        raise typer.Exit(2) from None
    _print_follow(job_id, submission, address, database_url, out)


def _print_follow(
    job_id: str, submission: str, address: str, database_url: str | None, out: str | None = None
) -> None:
    from workers.storage import is_remote

    # the URL itself is not printed: it may carry a password. A bucket output's default SQLite stays on the
    # machine that runs the driver, so from elsewhere only a shared database finds the job.
    if database_url or out is None or is_remote(out):
        db_hint = "--database-url URL"
    else:
        db_hint = f"--out {shlex.quote(out)}"
    typer.echo(f"job {job_id} submitted (Ray job {submission})")
    typer.echo(f"  follow:  v2s status {job_id} {db_hint} --watch")
    typer.echo(f"  logs:    ray job logs --address {address} {submission} --follow")
    typer.echo(f"  cancel:  v2s cancel {job_id} --address {address} {db_hint}")


@app.command()
def cancel(
    job: Annotated[str, typer.Argument(help="job id")],
    out: Annotated[
        str | None, typer.Option(help="the job's output folder or bucket URI (finds its default database)")
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL")] = None,
    address: Annotated[str | None, typer.Option(help="Ray dashboard URL (stops the Ray job)")] = None,
) -> None:
    """Stop a job: mark it cancelled (its driver submits no new work) and stop its Ray job when submitted."""
    from jobs.control import ControlError, cancel_job

    db = None
    if out is not None or database_url or EngineSettings().database_url:
        db = _db_for(out, database_url)
    try:
        for line in cancel_job(job, db, address):
            typer.echo(line)
    except ControlError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()
