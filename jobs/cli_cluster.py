"""The cluster commands: submit a job to a Ray cluster, cancel one, and how to follow a submitted job."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from jobs.cli_budget import BudgetOpt, SegmentBudgetOpt, budgeted_spec
from jobs.cli_common import (
    DatabaseUrlOpt,
    ForwardSecretsOpt,
    JobOutOpt,
    ShipCodeOpt,
    console,
    database_url_option,
    db_for,
    escape,
)
from jobs.settings import RAY_ADDRESS_ENV
from jobs.terminal import terminal_safe


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        source: Annotated[str, typer.Argument(help="as for `v2s run`, as seen from the cluster")],
        out: Annotated[str, typer.Option(help="output folder or bucket URI, as seen from the cluster")],
        # the environment as `ray job submit` reads it; only here: inside a submitted job Ray sets RAY_ADDRESS,
        # and a `resume` or `cancel` that read it there would act on a cluster nobody named
        address: Annotated[
            str,
            typer.Option(
                envvar=list(RAY_ADDRESS_ENV),
                show_envvar=True,
                help="Ray dashboard URL, e.g. http://HEAD:8265",
            ),
        ],
        database_url: Annotated[
            str | None, database_url_option("SQLAlchemy URL reachable from the cluster (PostgreSQL)")
        ] = None,
        max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
        ship_code: ShipCodeOpt = True,
        forward_secrets: ForwardSecretsOpt = False,
        budget_usd: BudgetOpt = None,
        segment_budget_usd: SegmentBudgetOpt = None,
    ) -> None:
        """Submit a job to a Ray cluster (Ray Jobs API); prints the job id and how to follow it."""
        from annotator.gateway.base import ModelCallError
        from annotator.gateway.preflight import check_catalog
        from annotator.settings import ModelSettings
        from jobs.control import submit_job
        from jobs.runner import new_job_id

        try:
            # Here only the catalog (retired, unpriced): the keys may live on the cluster's nodes alone. The
            # submitted `v2s run` checks access and makes the check calls there, before it splits anything.
            check_catalog(ModelSettings())
        except ModelCallError as exc:
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None
        spec = budgeted_spec(
            source=source,
            out=out,
            database_url=database_url,
            max_segment_s=max_segment_s,
            budget_usd=budget_usd,
            segment_budget_usd=segment_budget_usd,
        )
        job_id = new_job_id()
        try:
            submission = submit_job(
                spec, address, job_id, ship_code=ship_code, forward_secrets=forward_secrets
            )
        except Exception as exc:  # connection refused, 401/403 from token auth: one line, never the token
            console.print(f"[red]submit failed:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        print_follow(job_id, submission, address, database_url, out, forward_secrets=forward_secrets)

    @app.command()
    def cancel(
        job: Annotated[str, typer.Argument(help="job id")],
        out: JobOutOpt = None,
        database_url: DatabaseUrlOpt = None,
        address: Annotated[str | None, typer.Option(help="Ray dashboard URL (stops the Ray job)")] = None,
    ) -> None:
        """Stop a job: mark it cancelled (its driver submits no new work) and stop its Ray job when submitted."""
        from jobs.control import ControlError, cancel_job

        db = db_for(out, database_url) if out is not None or database_url else None
        try:
            for line in cancel_job(job, db, address):
                typer.echo(line)
        except ControlError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None


def print_follow(
    job_id: str,
    submission: str,
    address: str,
    database_url: str | None,
    out: str | None = None,
    *,
    forward_secrets: bool = False,
) -> None:
    from profiles_db.db import without_password
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
    if database_url and without_password(database_url) != database_url and not forward_secrets:
        typer.echo(
            "  note:    the database password was not sent (Ray shows a job's command and runtime_env in its "
            "dashboard): the cluster's nodes take it from their V2S_DATABASE_URL, or PGPASSWORD / ~/.pgpass; "
            "--forward-secrets sends it in the runtime_env instead"
        )
