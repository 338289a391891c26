"""`v2s profiles …`: read and correct the character memory. Reads go through the SQL views users also query."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jobs.cli_common import database_url_option, escape
from profiles_db.lookups import view_rows

app = typer.Typer(no_args_is_help=True, help="Inspect and correct character profiles (the CPM).")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="profiles")


# Names, aliases, labels and notes come from a model: every value is escaped, and no ":name:" becomes an emoji.
console = Console(emoji=False)

DbOpt = Annotated[str | None, database_url_option("SQLAlchemy URL, or a path to a v2s.sqlite")]
ScopeOpt = Annotated[str | None, typer.Option(help="scope (series name or video id); default: every scope")]


class ProfileFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


# an enum: `--format yaml` is refused by the parser (exit 2) instead of printing a table
FormatOpt = Annotated[ProfileFormat, typer.Option("--format", help="table or json")]


def _database(database_url: str | None):
    from profiles_db.db import sqlite_url

    url = database_url
    if not url:
        console.print("[red]give --database-url (a URL or a v2s.sqlite path) or set V2S_DATABASE_URL[/red]")
        raise typer.Exit(2)
    if "://" not in url:
        if not Path(url).is_file():
            console.print(f"[red]{escape(url)} is not a database file[/red]")
            raise typer.Exit(2)
        url = sqlite_url(url)
    from jobs.runner import checked_url, open_database

    return open_database(checked_url(url))  # a refusal: one line and exit 2 (jobs/cli_common.RefusingGroup)


def _emit(rows: list[dict], columns: list[str], fmt: str, title: str) -> None:
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(_cell(row.get(c))) for c in columns))
    console.print(table)


def _cell(value) -> str:
    if value is None:
        return ""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _scope_for(db, scope: str | None) -> str:
    if scope:
        return scope
    scopes = {r["scope"] for r in view_rows(db, "v_character_profiles", None, "scope")}
    if len(scopes) != 1:
        console.print(
            f"[red]give --scope; the database holds {len(scopes)} scopes: "
            f"{escape(', '.join(sorted(scopes)))}[/red]"
        )
        raise typer.Exit(2)
    return scopes.pop()


@app.command("list")
def list_profiles(
    database_url: DbOpt = None,
    scope: ScopeOpt = None,
    format: FormatOpt = ProfileFormat.TABLE,
) -> None:
    """One row per canonical character, with aliases and former codes."""
    rows = view_rows(_database(database_url), "v_character_profiles", scope, "scope, code")
    columns = ["scope", "code", "name", "status", "aliases", "former_codes", "appearances", "role_type"]
    _emit(rows, columns, format, "characters")


@app.command()
def show(
    code: str,
    database_url: DbOpt = None,
    scope: ScopeOpt = None,
    format: FormatOpt = ProfileFormat.TABLE,
) -> None:
    """One character: its profile, how its appearance changed, its name history and the identity proposals
    about it (pending ones first: they wait for `v2s profiles merge` or nothing)."""
    from profiles_db.cpm import CharacterProfileManager
    from profiles_db.history import identity_history

    database = _database(database_url)
    chosen = _scope_for(database, scope)
    profile = CharacterProfileManager(database).resolve(chosen, code)
    if profile is None:
        console.print(f"[red]no character {escape(repr(code))} in that scope[/red]")
        raise typer.Exit(1)
    history = identity_history(database, chosen, profile.id)
    assert history is not None
    if format == "json":
        data = profile.model_dump(mode="json")
        data |= history.model_dump(mode="json", include={"name_history", "proposals"})
        console.print_json(json.dumps(data))
        return
    table = Table(title=escape(f"{profile.id} {profile.display_name}"), show_header=False)
    for key, value in profile.model_dump().items():
        table.add_row(key, escape("\n".join(value) if isinstance(value, list) else str(value)))
    console.print(table)
    if history.name_history:
        names = Table(title="name history")
        for column in ("segment", "old", "new", "evidence"):
            names.add_column(column, overflow="fold")
        for h in history.name_history:
            old = " ".join(x for x in (h.old_name, f"({h.old_code})") if x)
            new = " ".join(x for x in (h.new_name, f"({h.new_code})" if h.new_code else "") if x)
            names.add_row(str(h.segment or ""), escape(old), escape(new), escape(h.evidence))
        console.print(names)
    if history.proposals:
        props = Table(title=f"identity proposals ({len(history.pending)} pending)")
        for column in ("status", "segment", "proposal", "confidence", "evidence", "note"):
            props.add_column(column, overflow="fold")
        for p in history.proposals:
            props.add_row(
                p.status,
                str(p.segment or ""),
                escape(f"{p.from_code} = {p.into_code} ({p.source})"),
                p.confidence,
                escape(p.evidence),
                escape(p.note),
            )
        console.print(props)
        if history.pending:
            first = history.pending[0]
            console.print(
                escape(
                    f"accept a pending proposal with: v2s profiles merge {first.from_code} {first.into_code}"
                )
            )


@app.command()
def relationships(
    database_url: DbOpt = None,
    scope: ScopeOpt = None,
    format: FormatOpt = ProfileFormat.TABLE,
) -> None:
    """Who relates to whom, with evidence and the segments it spans."""
    database = _database(database_url)
    rows = view_rows(database, "v_relationships", scope, "scope, a_code, b_code")
    _current_codes(database, rows, "evidence")
    _emit(
        rows,
        ["scope", "a_code", "a_name", "b_code", "b_name", "label", "first_idx", "last_idx"],
        format,
        "relationships",
    )


def _current_codes(database, rows: list[dict], field: str) -> None:
    """Codes quoted in stored notes (a model wrote `unknown_001` before it was named) read as today's codes."""
    from annotator.schemas.plot import replace_codes
    from profiles_db.cpm import CharacterProfileManager

    manager = CharacterProfileManager(database)
    resolvers = {scope: manager.resolver(scope) for scope in {r["scope"] for r in rows}}

    def fix(scope: str):
        def current(code: str) -> str:
            profile = resolvers[scope](code)
            return profile.id if profile is not None else code

        return current

    for row in rows:
        if row.get(field):
            row[field] = replace_codes(row[field], fix(row["scope"]))


@app.command()
def graph(
    out: Annotated[Path, typer.Option(help="picture to write: .png or .svg (a .dot is written beside it)")],
    database_url: DbOpt = None,
    scope: ScopeOpt = None,
) -> None:
    """Draw the relationship graph of one scope (like the paper's Fig. 7)."""
    from jobs.relationship_graph import draw, relationship_graph, write_dot

    database = _database(database_url)
    chosen = _scope_for(database, scope)
    people = view_rows(database, "v_character_profiles", chosen, "code")
    links = view_rows(database, "v_relationships", chosen, "a_code")
    g = relationship_graph(people, links)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"characters of {chosen}"
    write_dot(g, out.with_suffix(".dot"), title)
    draw(g, out, title)
    console.print(f"wrote {escape(str(out))} and {escape(str(out.with_suffix('.dot')))}")


@app.command()
def rename(code: str, name: str, database_url: DbOpt = None, scope: ScopeOpt = None) -> None:
    """Name a character by hand (an unnamed one is upgraded, with the evidence 'manual rename')."""
    from profiles_db.cpm import CharacterProfileManager

    database = _database(database_url)
    profile = _correct(
        lambda m, s: m.rename(s, code, name), CharacterProfileManager(database), _scope_for(database, scope)
    )
    console.print(escape(f"{code} is now {profile.id} {profile.display_name}"))


@app.command()
def merge(
    from_code: str,
    into_code: str,
    reason: str = "manual merge",
    database_url: DbOpt = None,
    scope: ScopeOpt = None,
) -> None:
    """Fold FROM_CODE into INTO_CODE (recorded in merges; `unmerge` undoes it)."""
    from profiles_db.cpm import CharacterProfileManager

    database = _database(database_url)
    manager = CharacterProfileManager(database)
    profile = _correct(
        lambda m, s: m.merge(s, from_code, into_code, reason), manager, _scope_for(database, scope)
    )
    console.print(escape(f"{from_code} merged into {profile.id} {profile.display_name}"))


@app.command()
def unmerge(code: str, database_url: DbOpt = None, scope: ScopeOpt = None) -> None:
    """Undo the last merge of the record that carries CODE."""
    from profiles_db.cpm import CharacterProfileManager

    database = _database(database_url)
    profile = _correct(
        lambda m, s: m.unmerge(s, code), CharacterProfileManager(database), _scope_for(database, scope)
    )
    console.print(escape(f"{code} restored as {profile.id} {profile.display_name}"))


def _correct(action, manager, scope: str):
    try:
        return action(manager, scope)
    except (KeyError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from None
