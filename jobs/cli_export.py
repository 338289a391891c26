"""`v2s export`: the records of an output in a fine-tuning tool's layout (jobs/export.py, docs/training.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.cli_common import DatabaseUrlOpt, console, db_for, escape
from jobs.terminal import terminal_safe


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        out: Annotated[str, typer.Argument(help="the output folder or bucket URI of a run")],
        format: Annotated[
            str, typer.Option("--format", help="hf, llamafactory, swift, qwenvl or sharegpt")
        ] = "hf",
        to: Annotated[str, typer.Option("--to", help="the export folder or bucket URI")] = "",
        paths: Annotated[
            str, typer.Option(help="video paths in the rows: absolute, or relative (to --to)")
        ] = "absolute",
        copy_media: Annotated[
            bool,
            typer.Option("--copy-media", help="copy the segment videos into TO/media/ (bucket ones fetched)"),
        ] = False,
        think_tag: Annotated[
            str, typer.Option(help="the tag around the reasoning: think (default) or e.g. thinking")
        ] = "think",
        include_rejected: Annotated[
            bool, typer.Option("--include-rejected", help="also records with quality.accepted false")
        ] = False,
        split: Annotated[
            str, typer.Option(help="fractions by video, e.g. train=0.98,validation=0.02")
        ] = "train=1",
        name: Annotated[str, typer.Option(help="dataset name (LLaMA-Factory's dataset_info.json)")] = "v2s",
        corrected: Annotated[
            bool,
            typer.Option(
                "--corrected", help="reviewed segments with the reviewers' script (v2s review import first)"
            ),
        ] = False,
        whole_videos: Annotated[
            bool,
            typer.Option(
                "--whole-videos",
                help="also each video's whole script, merged from its records (SPLIT.videos.jsonl)",
            ),
        ] = False,
        database_url: DatabaseUrlOpt = None,
    ) -> None:
        """Write the records of OUT in the layout of a fine-tuning tool; the same OUT gives the same bytes."""
        from pydantic import ValidationError

        from jobs.export import ExportOptions, export, parse_splits
        from workers.storage import StorageError

        if not to:
            console.print("[red]error:[/red] give --to DIR (a folder or a bucket URI)")
            raise typer.Exit(2)
        try:
            options = ExportOptions(
                format=format,
                paths=paths,
                copy_media=copy_media,
                think_tag=think_tag,
                include_rejected=include_rejected,
                splits=parse_splits(split),
                name=name,
                whole_videos=whole_videos,
            )
            db = db_for(out, database_url) if corrected else None
            try:
                summary = export(out, to, options, _corrections(db) if db is not None else None)
            finally:
                if db is not None:
                    db.dispose()
        except ValidationError as exc:  # one line per wrong option, named as the user typed it
            for err in exc.errors():
                field = str(err["loc"][0]) if err["loc"] else "options"
                option = "--split" if field == "splits" else "--" + field.replace("_", "-")
                message = err["msg"].removeprefix("Value error, ")
                typer.echo(f"error: {option}: {terminal_safe(message)}", err=True)
            raise typer.Exit(2) from None
        except (ValueError, StorageError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except OSError as exc:  # a full disk, a file-size limit, a folder not writable: no file was left half
            console.print(
                f"[red]error:[/red] export to {escape(to)} failed, no file left half-written: {escape(str(exc))}",
                soft_wrap=True,
            )
            raise typer.Exit(1) from None
        for file, count in summary.files.items():
            unit = "rows" if file.endswith(".jsonl") else "bytes"
            console.print(f"{escape(summary.to)}/{escape(file)}: {count} {unit}")
        if summary.media_copied:
            console.print(f"{summary.media_copied} videos copied into {escape(summary.to)}/media/")
        if corrected:
            console.print(f"{summary.corrected} records carry a reviewer's corrected script")
        if summary.skipped_rejected:
            console.print(
                f"{summary.skipped_rejected} rejected records left out (--include-rejected keeps them)"
            )


def _corrections(db):
    from jobs.review.corrected import corrected_records

    return lambda records: corrected_records(records, db)
