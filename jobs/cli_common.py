"""What the `v2s` commands share: the console, escaping, the refusals turned into one line, the database
of a job's output, and the options several commands take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from jobs.settings import EngineSettings

console = Console()

JobOutOpt = Annotated[
    str | None, typer.Option(help="the job's output folder or bucket URI (finds its default database)")
]
DatabaseUrlOpt = Annotated[str | None, typer.Option(help="SQLAlchemy URL")]
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


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def db_for(out: str | None, database_url: str | None):
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
