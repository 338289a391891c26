"""The `v2s` command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from jobs.cli_budget import (
    EXIT_PAUSED,
    BudgetOpt,
    SegmentBudgetOpt,
    budgeted_spec,
    checked_budgets,
    paused_line,
)
from jobs.cli_common import (
    DatabaseUrlOpt,
    ForwardSecretsOpt,
    JobOutOpt,
    RefusingGroup,
    ShipCodeOpt,
    console,
    database_url_option,
    db_for,
    escape,
    refusals,
    require_job,
)
from jobs.terminal import terminal_safe

CHECK_CALLS_HELP = (
    "check each stage's model with one tiny structured call per schema before splitting (`v2s check`); "
    "off: catalog and access only"
)

# add_completion: `v2s --install-completion` / `--show-completion` for bash, zsh, fish and PowerShell
app = typer.Typer(
    cls=RefusingGroup,
    no_args_is_help=True,
    add_completion=True,
    help="v2s: long-form video to script data engine.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), the one `pip show v2s` reports."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("v2s")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"v2s {package_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    # no docstring on purpose: the Typer's help= stays the text of `v2s --help`
    from jobs.variables import unknown_variables

    for line in unknown_variables():  # a mistyped setting would otherwise be ignored without a word
        typer.echo(f"warning: {terminal_safe(line)}", err=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


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
    database_url: Annotated[str | None, database_url_option("SQLAlchemy URL; default OUT/v2s.sqlite")] = None,
    max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray")] = None,
    job_id: Annotated[str | None, typer.Option(hidden=True, help="set by `v2s submit`")] = None,
    check_calls: Annotated[bool, typer.Option(help=CHECK_CALLS_HELP)] = True,
    budget_usd: BudgetOpt = None,
    segment_budget_usd: SegmentBudgetOpt = None,
) -> None:
    """Annotate every video of SOURCE on an embedded Ray; exit status 1 when some inputs failed, 3 when it
    stopped at its budget. The models are checked first (`v2s check`): a failure stops the run before anything
    is split."""
    from jobs.report import print_summary
    from jobs.runner import run_job
    from jobs.sources import SourceError
    from profiles_db.db import Database

    spec = budgeted_spec(
        source=source,
        out=out,
        database_url=database_url,
        max_segment_s=max_segment_s,
        num_cpus=num_cpus,
        budget_usd=budget_usd,
        segment_budget_usd=segment_budget_usd,
    )
    from annotator.gateway.base import ModelCallError
    from jobs.runner import new_job_id
    from profiles_db.outage import DatabaseOutage

    job_id = job_id or new_job_id()  # known before the run, so an interrupt can name the job to resume
    try:
        job_id, summary = run_job(spec, console, job_id=job_id, check_calls=check_calls)
    except KeyboardInterrupt:
        _exit_interrupted(job_id, spec.out, database_url, at_once=True)
    except DatabaseOutage as exc:
        _exit_interrupted(job_id, spec.out, database_url, outage=exc)
    except SourceError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except ModelCallError as exc:  # missing or refused credentials: one line naming the variable to set
        typer.echo(f"error: {terminal_safe(exc)}", err=True)
        raise typer.Exit(2) from None
    except refusals() as exc:  # busy or damaged output, unusable database, Ray that will not start
        typer.echo(f"error: {terminal_safe(exc)}", err=True)
        raise typer.Exit(2) from None
    db = Database(spec.db_url())
    print_summary(console, job_id, summary, db, str(spec.out))
    if summary.interrupted:
        _exit_interrupted(job_id, spec.out, database_url)
    _exit_when_paused(job_id, summary, db)
    if summary.failed_videos or summary.stage_failures:
        raise typer.Exit(1)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process Ctrl-C stopped
EXIT_OUTAGE = 75  # sysexits' EX_TEMPFAIL: the database stayed away; the same command later goes on


def _exit_interrupted(
    job_id: str, out, database_url: str | None, *, at_once: bool = False, outage: Exception | None = None
) -> None:
    """One line: what an interrupt (or an outage longer than V2S_OUTAGE_WAIT_S) kept, and the command that goes
    on from there; exit 130 (75 for the outage)."""
    from profiles_db.db import shown_url

    where = f"--database-url {shown_url(database_url)}" if database_url else f"--out {out}"
    kept = "stopped at once" if at_once else "the tasks in flight finished and their answers are kept"
    if outage is not None:
        kept = f"{outage}; every answer paid is kept"
    typer.echo(terminal_safe(f"interrupted ({kept}); go on with: v2s resume {job_id} {where}"), err=True)
    raise typer.Exit(EXIT_INTERRUPTED if outage is None else EXIT_OUTAGE)


def _exit_when_paused(job_id: str, summary, db) -> None:
    """A run stopped at its budget says so in one line (the budget, the spend, the command to go on), exit 3."""
    if not summary.paused:
        return
    from jobs.plan import resume_budget
    from profiles_db.stages import StageStore

    store = StageStore(db)
    budget = {**summary.budget, "spent_usd": store.usage(job_id)["cost_usd"]}
    budget["resume_usd"] = resume_budget(store, job_id)
    typer.echo(terminal_safe(paused_line(job_id, budget)), err=True)
    raise typer.Exit(EXIT_PAUSED)


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
def db_upgrade(database_url: DatabaseUrlOpt = None) -> None:
    """Apply all Alembic migrations."""
    from profiles_db.db import upgrade

    target = database_url
    if not target:
        console.print("[red]give --database-url or set V2S_DATABASE_URL[/red]")
        raise typer.Exit(2)
    upgrade(target)
    console.print("database is at the latest schema")


@app.command()
def status(
    job: Annotated[str | None, typer.Argument(help="job id (default: all jobs)")] = None,
    out: JobOutOpt = None,
    database_url: DatabaseUrlOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="refresh until interrupted")] = False,
    every: Annotated[float, typer.Option(help="seconds between refreshes with --watch")] = 2.0,
    format: Annotated[
        OutputFormat, typer.Option("--format", help="table, or json (one object: docs/cli.md#status-json)")
    ] = OutputFormat.TABLE,
) -> None:
    """Per stage pending/running/done/failed/rejected, failures with their reasons, tokens and cost, shards."""
    import time

    from rich.live import Live

    from jobs.report import status_view

    if watch and format == OutputFormat.JSON:
        typer.echo("error: --watch refreshes the table; give --format json without it", err=True)
        raise typer.Exit(2)
    db = db_for(out, database_url)
    require_job(db, job)
    if format == OutputFormat.JSON:
        from jobs.status_report import status_report

        sys.stdout.write(status_report(db, job).model_dump_json(indent=2) + "\n")
        return
    if not watch:
        console.print(status_view(db, job))
        return
    # on stderr, so the table stays the only thing on stdout; also says the watch is up (tests wait for it)
    typer.echo(f"watching {job or 'every job'} every {every:g} s; Ctrl-C stops", err=True)
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
    out: JobOutOpt = None,
    database_url: DatabaseUrlOpt = None,
    only_reason: Annotated[
        list[str] | None,
        typer.Option(
            help="retry only stages with this outcome (repeatable): timeout, rate_limited, server_error, "
            "quota (a spent daily quota: resume after it resets), invalid_output, truncated, empty, lost, "
            "out_of_order, error, auth, blocked, and rejected (scripts the quality gates rejected, asked again "
            "on purpose); default: every failure but blocked (a deterministic SAFETY/RECITATION block fails "
            "the same way again); gate rejects only when named"
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
    ship_code: ShipCodeOpt = True,
    forward_secrets: ForwardSecretsOpt = False,
    budget_usd: BudgetOpt = None,
    segment_budget_usd: SegmentBudgetOpt = None,
) -> None:
    """Re-run the failed and unfinished stages of JOB (done stages are not redone and call no model); a job
    paused at its budget goes on with a larger --budget-usd (exit 3 if it stops at it again)."""
    from jobs.cli_cluster import print_follow
    from jobs.control import ControlError, load_spec, resume_job, submit_job, with_budget
    from jobs.report import print_summary
    from jobs.resume_reasons import UnknownReasonError, checked_reasons
    from profiles_db.outage import DatabaseOutage

    try:  # before anything else: a misspelt reason would otherwise match nothing and exit 0
        reasons = checked_reasons(only_reason)
    except UnknownReasonError as exc:
        typer.echo(
            f"error: {exc}", err=True
        )  # one line, unwrapped (rich would fold it at the terminal width)
        raise typer.Exit(2) from None
    checked_budgets(budget_usd=budget_usd, segment_budget_usd=segment_budget_usd)
    db = db_for(out, database_url)
    try:
        if address:
            submission = submit_job(
                with_budget(load_spec(db, job, out), budget_usd, segment_budget_usd),
                address,
                job,
                resume=True,
                ship_code=ship_code,
                forward_secrets=forward_secrets,
                only_reasons=reasons,
                give_up=give_up or [],
            )
            print_follow(job, submission, address, db.url, forward_secrets=forward_secrets)
            return
        job_id, summary = resume_job(
            db,
            job,
            console,
            only_reasons=reasons,
            give_up=give_up or [],
            budget_usd=budget_usd,
            segment_budget_usd=segment_budget_usd,
            out=out,
        )
    except KeyboardInterrupt:
        _exit_interrupted(job, out, database_url, at_once=True)
    except DatabaseOutage as exc:
        _exit_interrupted(job, out, database_url, outage=exc)
    except ControlError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except refusals() as exc:
        typer.echo(f"error: {terminal_safe(exc)}", err=True)
        raise typer.Exit(2) from None
    spec = load_spec(db, job)
    print_summary(console, job_id, summary, db, str(spec.out))
    if summary.interrupted:
        _exit_interrupted(job_id, spec.out, database_url)
    _exit_when_paused(job_id, summary, db)
    if summary.failed_videos or summary.stage_failures:
        raise typer.Exit(1)


@app.command()
def verify(
    out: Annotated[str, typer.Argument(help="the output folder or bucket URI")],
    database_url: Annotated[
        str | None, database_url_option("SQLAlchemy URL (default OUT/v2s.sqlite)")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="rebuild damaged or missing shards and the manifest from the database"),
    ] = False,
) -> None:
    """Check an output against its database: every shard as written, nothing else, the manifest true.

    Exit status 0 when it matches (or was repaired), 1 when something is wrong, 2 when it cannot be repaired."""
    from workers.shards import ShardWriter
    from workers.storage import normalise

    db = db_for(out, database_url)
    writer = ShardWriter(normalise(out), db, recover=False)
    from workers.verify import verify_output

    report = verify_output(writer, repair=repair)
    proxies = _verify_proxies(writer, db, repair)
    for note in report.notes:
        console.print(f"[dim]{escape(note)}[/dim]")
    for finding in report.findings:
        mark = "[green]repaired[/green]" if finding.repaired else "[red]damaged[/red]"
        console.print(f"{mark} {escape(finding.name)}: {escape(finding.problem)}")
    if report.manifest_rewritten:
        done = "rewritten from the database" if repair and report.ok else "does not match the database"
        console.print(f"[yellow]manifest.json[/yellow] {done}")
    for finding in proxies:
        mark = "[green]repaired[/green]" if finding.repaired else "[red]damaged[/red]"
        console.print(f"{mark} proxy {escape(finding.uri)}: {escape(finding.problem)}")
    console.print(
        f"{report.shards} shards, {report.records} records in the database for {escape(report.out)}"
    )
    if not report.ok or (repair and not all(f.repaired for f in proxies)):
        raise typer.Exit(2)
    if (not report.clean or proxies) and not repair:
        raise typer.Exit(1)


def _verify_proxies(writer, db, repair: bool):
    """Every proxy the written records point to, checked against their spans (and cut again with --repair)."""
    from profiles_db.stages import StageStore
    from workers.verify_proxies import proxy_uses, verify_proxies

    lines = (line for entry in writer.catalog.shards() for line in writer.catalog.lines(entry.name))
    store = StageStore(db)

    def has_audio(video_id: str) -> bool | None:
        video = store.video(video_id)
        return video.has_audio if video is not None else None

    return verify_proxies(proxy_uses(lines, writer.out), writer.out, has_audio, repair=repair)


def _register_the_other_modules() -> None:
    """The commands kept in modules of their own, in one list (an import error is a bug to see, never a command
    silently missing)."""
    from jobs import cli_check, cli_cluster, cli_dev, cli_eval, cli_export, cli_plan, cli_review, profiles_cli

    modules = (profiles_cli, cli_eval, cli_check, cli_cluster, cli_dev, cli_export, cli_plan, cli_review)
    for module in modules:
        module.register(app)


_register_the_other_modules()

if __name__ == "__main__":
    app()
