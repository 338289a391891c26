"""What the `v2s` commands share: the console, escaping, the refusals turned into one line, the database
of a job's output, and the options several commands take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from jobs.terminal import terminal_safe

console = Console()

DATABASE_ENV = "V2S_DATABASE_URL"


def database_url_option(help: str = "SQLAlchemy URL of the job database"):
    """The one spelling of the database option. Its environment variable is read by the CLI library (and shown
    in `--help`), so no command reads it by hand; the runner's EngineSettings only adds a password it knows."""
    return typer.Option("--database-url", envvar=DATABASE_ENV, show_envvar=True, help=help)


JobOutOpt = Annotated[
    str | None, typer.Option(help="the job's output folder or bucket URI (finds its default database)")
]
DatabaseUrlOpt = Annotated[str | None, database_url_option()]
# The spellings older releases used (`v2s profiles … --db`, `v2s db upgrade --url`) still work, hidden from
# `--help`: Typer cannot hide one name of an option, so each is an option of its own that wins when given.
ShipCodeOpt = Annotated[
    bool,
    typer.Option(help="upload this project as the job's working_dir (off: v2s is installed on the nodes)"),
]
ForwardSecretsOpt = Annotated[
    bool,
    typer.Option(help="also send model/cloud keys in the runtime_env (Ray logs its values on the nodes)"),
]


def refusals() -> tuple[type[BaseException], ...]:
    """What the CLI edge turns into one clear line and exit status 2 instead of a traceback."""
    from jobs.runner import JobRefused
    from profiles_db.outputs import OutputBusy
    from workers.verify import OutputDamaged

    return (JobRefused, OutputBusy, OutputDamaged)


class RefusingGroup(TyperGroup):
    """The one error boundary of `v2s`: a refusal raised anywhere under it (any command, any sub-app) ends as
    one line on stderr and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except refusals() as exc:
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None


def escape(text: str) -> str:
    """The one way text from outside (file names, object keys, a model, the database) reaches the terminal:
    control and bidi characters shown escaped (jobs/terminal.py), then rich markup escaped."""
    from rich.markup import escape as rich_escape

    return rich_escape(terminal_safe(text))


def require_job(db, job_id: str | None) -> None:
    """An unknown job id is an error (exit status 2, naming the id and the database), not empty tables."""
    from profiles_db.db import shown_url
    from profiles_db.stages import StageStore

    if job_id is not None and StageStore(db).job(job_id) is None:
        typer.echo(f"error: no job {job_id!r} in {shown_url(db.url)}", err=True)
        raise typer.Exit(2)


def db_for(out: str | None, database_url: str | None):
    """The database of a job: `database_url` (the option or V2S_DATABASE_URL), else OUT's default SQLite."""
    from jobs.runner import JobSpec
    from workers.storage import is_remote, local_workdir

    if out is None and not database_url:
        console.print("[red]give --out or --database-url (or set V2S_DATABASE_URL)[/red]")
        raise typer.Exit(2)
    spec = JobSpec(source="", out=out or Path("."), database_url=database_url)
    if not database_url and is_remote(spec.out):
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
    from profiles_db.db import sqlite_url

    try:
        url = spec.db_url()
    except JobRefused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    default = Path(spec.out) / "v2s.sqlite" if not is_remote(spec.out) else None
    if default is not None and url == sqlite_url(default) and not default.is_file():
        # opening it would create an empty database (and the folder) and report success on a mistyped path
        console.print(
            f"[red]error:[/red] {escape(str(spec.out))} holds no v2s output (no v2s.sqlite there): check the "
            "path, or pass --database-url with the database the job used (or set V2S_DATABASE_URL)",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    try:
        return open_database(url)
    except JobRefused as exc:
        typer.echo(f"error: {terminal_safe(exc)}", err=True)
        raise typer.Exit(2) from None
