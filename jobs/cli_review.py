"""`v2s review`: read a run's scripts beside their video (jobs/review, docs/review.md)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import DatabaseUrlOpt, console, db_for, escape

review_app = typer.Typer(
    no_args_is_help=True,
    help="Review a run: a static site of its scripts and cast; the Label Studio round trip.",
)


@review_app.command("build")
def build(
    out: Annotated[str, typer.Argument(help="the run's output folder or bucket URI")],
    to: Annotated[
        Path | None, typer.Option(help="the site's folder (default OUT/review for a local OUT)")
    ] = None,
    database_url: DatabaseUrlOpt = None,
    gt: Annotated[
        str | None, typer.Option(help="ground truth to score the run against (as `v2s eval --gt`)")
    ] = None,
) -> None:
    """Write a site that opens from file:// with no server: the run, each video's segments with their proxy,
    scenes and timestamped events (click one to seek), and each scope's character cards and graph."""
    from jobs.review import build_site
    from workers.storage import StorageError, is_remote

    if to is None:
        if is_remote(out):
            console.print("[red]error:[/red] give --to DIR: the site is a local folder")
            raise typer.Exit(2)
        to = Path(out) / "review"
    db = db_for(out, database_url)
    try:
        summary = build_site(out, str(to.resolve()), db, gt=gt)
    except (FileNotFoundError, StorageError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    console.print(
        f"{summary.pages} pages, {summary.videos} videos, {summary.media} segment videos: "
        f"open {escape((to / 'index.html').resolve().as_uri())}"
    )


@review_app.command("serve")
def serve(
    site: Annotated[Path, typer.Argument(help="a folder `v2s review build` wrote")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8766,
) -> None:
    """Serve the site on loopback (optional: it opens from file:// as well)."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        console.print(f"serving {escape(str(site))} at http://127.0.0.1:{port}/index.html (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):
            httpd.serve_forever()


def register(app: typer.Typer) -> None:
    from jobs import cli_labelstudio

    cli_labelstudio.register(review_app)
    app.add_typer(review_app, name="review")
