"""`v2s review export-labelstudio | push | import | export-gt`: the Label Studio round trip (docs/review.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_common import DatabaseUrlOpt, console, db_for, escape

API_KEY_ENV = "LABEL_STUDIO_API_KEY"
MediaOpt = Annotated[
    str,
    typer.Option(help="local: Label Studio serves the proxies from disk (local files); url: see --media-url"),
]
RootOpt = Annotated[
    str, typer.Option(help="the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (--media local)")
]
PrefixOpt = Annotated[
    str | None, typer.Option(help="--media url: where OUT's files are served (a proxy is PREFIX/PATH-IN-OUT)")
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar=API_KEY_ENV, show_envvar=True, help="a Label Studio token (legacy or personal access)"
    ),
]


def register(review_app: typer.Typer) -> None:
    review_app.command("export-labelstudio")(export_labelstudio)
    review_app.command("push")(push)
    review_app.command("import")(import_review)
    review_app.command("export-gt")(export_gt)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(2)


def _export(out: str, database_url: str | None, media: str, document_root: str, media_url: str | None):
    from jobs.review.ls_export import MediaSettings, build_export

    db = db_for(out, database_url)
    try:
        settings = MediaSettings(media=media, document_root=document_root, url_prefix=media_url)
        return build_export(out, db, settings)
    finally:
        db.dispose()


def export_labelstudio(
    out: Annotated[str, typer.Argument(help="the run's output folder or bucket URI")],
    to: Annotated[Path, typer.Option("--to", help="folder for labeling_config.xml and tasks.json")],
    database_url: DatabaseUrlOpt = None,
    media: MediaOpt = "local",
    document_root: RootOpt = "/",
    media_url: PrefixOpt = None,
) -> None:
    """Write a Label Studio labeling config and one task per segment whose predictions pre-fill its timeline."""
    from pydantic import ValidationError

    from jobs.review.ls_export import write_export

    try:
        written = write_export(_export(out, database_url, media, document_root, media_url), str(to))
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    for name, size in written.items():
        console.print(f"{escape(str(to / name))}: {size} bytes")


def push(
    out: Annotated[str, typer.Argument(help="the run's output folder")],
    url: Annotated[str, typer.Option(help="the Label Studio server, e.g. http://127.0.0.1:8080")],
    api_key: ApiKeyOpt = None,
    title: Annotated[
        str | None, typer.Option(help="project title, 50 characters at most (default: v2s review of NAME)")
    ] = None,
    database_url: DatabaseUrlOpt = None,
    media: MediaOpt = "local",
    document_root: RootOpt = "/",
    media_url: PrefixOpt = None,
) -> None:
    """Create a Label Studio project with the run's tasks (and a local storage of the proxies' folders)."""
    from pydantic import ValidationError

    from jobs.review.ls_client import LabelStudio, LabelStudioError

    try:
        export = _export(out, database_url, media, document_root, media_url)
        ls = LabelStudio(url, api_key or "")
        # Label Studio takes titles of 50 characters at most; the description names OUT in full
        name = title or f"v2s review of {Path(str(out).rstrip('/')).name}"
        project = ls.create_project(name[:50], export.config, f"v2s run output {out}")
        if media == "local":
            for n, folder in enumerate(export.proxy_dirs, start=1):
                ls.add_local_storage(project, folder, f"v2s proxies {n}")
        count = ls.import_tasks(project, export.tasks)
    except (ValidationError, ValueError, FileNotFoundError, LabelStudioError) as exc:
        raise _fail(exc) from None
    console.print(f"project {project}: {count} tasks at {escape(url.rstrip('/'))}/projects/{project}")
    typer.echo(json.dumps({"project": project, "tasks": count}))


def import_review(
    export_file: Annotated[
        Path | None, typer.Argument(help="a Label Studio JSON export of the project")
    ] = None,
    out: Annotated[
        str, typer.Option("--out", help="the run's output folder (its records and database)")
    ] = ".",
    url: Annotated[
        str | None, typer.Option(help="read the annotations from this Label Studio server instead")
    ] = None,
    project: Annotated[int | None, typer.Option(help="the project on --url")] = None,
    api_key: ApiKeyOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Bring the annotations back: corrected segments become ground truth, cast corrections go to the CPM."""
    from pydantic import ValidationError

    from jobs.review.ls_client import LabelStudioError

    if (export_file is None) == (url is None) or (url is not None and project is None):
        console.print("[red]error:[/red] give EXPORT.json, or --url URL --project ID")
        raise typer.Exit(2)
    db = db_for(out, database_url)
    try:
        summary = _import(export_file, out, url, project, api_key, db)
    except (ValidationError, ValueError, FileNotFoundError, LabelStudioError) as exc:
        raise _fail(exc) from None
    finally:
        db.dispose()
    gt = summary.ground_truth
    console.print(f"ground truth: {len(gt.stored)} segments stored, {len(gt.skipped)} skipped")
    for line in gt.skipped + [f"unchanged: {u}" for u in summary.unchanged] + summary.applied:
        console.print(f"  {escape(line)}", soft_wrap=True)
    if summary.unreviewed:
        console.print(f"{len(summary.unreviewed)} tasks have no submitted annotation yet")


def _import(export_file: Path | None, out: str, url: str | None, project: int | None, api_key, db):
    from jobs.export import read_records
    from jobs.review.corrections import apply_review
    from jobs.review.ls_client import LabelStudio
    from jobs.review.ls_format import Task
    from jobs.review.ls_import import convert
    from profiles_db.cpm import CharacterProfileManager

    users: dict[int, str] = {}
    if url is not None:
        ls = LabelStudio(url, api_key or os.environ.get(API_KEY_ENV, ""))
        raw, source = ls.export(int(project or 0)), f"{url.rstrip('/')} project {project}"
        users = ls.users()
    else:
        assert export_file is not None
        raw, source = _read_export(export_file), str(export_file)
    tasks = [Task.model_validate(t) for t in raw]
    records = {r.id: r for r in read_records(out)}
    manager = CharacterProfileManager(db)
    scopes = {str(t.data.get("v2s_scope")) for t in tasks if t.data.get("v2s_scope")}
    review = convert(tasks, records, {s: manager.resolver(s) for s in scopes}, source, users)
    return apply_review(db, review)


def _read_export(path: Path) -> list:
    if not path.is_file():
        raise ValueError(f"{path}: no such Label Studio export file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    return raw


def export_gt(
    out: Annotated[str, typer.Argument(help="the run's output folder (finds its database)")],
    to: Annotated[Path, typer.Option("--to", help="folder for ground_truth.jsonl")],
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Write the database's ground truth (the corrected segments) as records `v2s eval --gt` reads."""
    from jobs.review.ground_truth import write_gt

    db = db_for(out, database_url)
    try:
        written = write_gt(db, str(to))
    except ValueError as exc:
        raise _fail(exc) from None
    finally:
        db.dispose()
    for name, count in written.items():
        console.print(f"{escape(str(to / name))}: {count} segments")
