"""`v2s check`: are the stages' models served, priced, reachable with the key, and do they take the stages'
requests? What the check cost (jobs/check.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.cli_common import console, escape
from jobs.terminal import terminal_safe

CALLS_HELP = (
    "make the tiny structured call per stage schema (a fraction of a cent); off: catalog and access only"
)


def register(app: typer.Typer) -> None:
    @app.command()
    def check(calls: Annotated[bool, typer.Option("--calls/--no-calls", help=CALLS_HELP)] = True) -> None:
        """Check every stage's model: catalog (retired, priced), access (key, served name) and one tiny
        structured call per stage schema; prints what it cost. Exit status 2 and one line on a failure."""
        from annotator.gateway.base import ModelCallError
        from annotator.settings import ModelSettings
        from jobs.check import check_models

        try:
            report = check_models(ModelSettings(), calls=calls)
        except ModelCallError as exc:  # one line naming the stage, the model and the fix
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None
        print_check(report)
        for warning in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(warning)}", emoji=False, highlight=False)


def print_check(report) -> None:
    from rich.table import Table

    table = Table(title="v2s check")
    columns = ["stage", "schema", "backend", "model", "served by", "max out", "server limit", "thinking"]
    columns += ["tokens in", "tokens out", "of which thinking", "$", "outcome"]
    for column in columns:
        left = column in ("stage", "schema", "backend", "model", "served by", "thinking", "outcome")
        table.add_column(column, justify="left" if left else "right")
    for s in report.stages:
        outcome = "ok" if s.outcome == "ok" else f"{s.outcome}: {s.problem}"
        table.add_row(
            s.stage,
            s.schema_name,
            s.backend,
            escape(s.model),
            escape(s.served_model or "-"),
            f"{s.max_output_tokens:,}",
            f"{s.server_limit:,}" if s.server_limit else "-",
            escape(str(s.thinking)) if s.thinking is not None else "-",
            f"{s.input_tokens:,}",
            f"{s.output_tokens:,}",
            f"{s.thinking_tokens:,}",
            f"{s.cost_usd:.6f}",
            escape(outcome),
        )
    if report.stages:
        console.print(table)
    calls = f"{len(report.stages)} calls" if report.calls else "no calls (--no-calls)"
    console.print(
        f"the check cost ${report.cost_usd:.6f} ({calls}; prices from the catalog {escape(report.price_table)} "
        "and V2S_PRICES)",
        emoji=False,
        highlight=False,
    )
