"""`v2s plan`: split a job's videos (kept for the run) and print what it will cost and take (jobs/plan.py)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from jobs.cli_budget import checked_budgets
from jobs.cli_common import console, database_url_option, escape, refusals
from jobs.terminal import terminal_safe

CHECK_CALLS_HELP = (
    "check each stage's model with one tiny structured call per schema first (`v2s check`); "
    "off: catalog and access only"
)
TIER_HELP = "price every stage at this tier (standard, flex or batch) instead of V2S_<STAGE>_TIER"


def register(app: typer.Typer) -> None:
    @app.command()
    def plan(
        source: Annotated[str, typer.Argument(help="a video file, a folder, a glob, or a manifest")],
        out: Annotated[str, typer.Option(help="the output the run will use (its proxies are cut here)")],
        database_url: Annotated[
            str | None, database_url_option("SQLAlchemy URL; default OUT/v2s.sqlite")
        ] = None,
        max_segment_s: Annotated[float, typer.Option(help="longest segment, seconds")] = 300.0,
        num_cpus: Annotated[int | None, typer.Option(help="CPUs for the embedded Ray")] = None,
        tier: Annotated[str | None, typer.Option(help=TIER_HELP)] = None,
        rate_limits: Annotated[
            str | None, typer.Option(help='quotas per model, e.g. \'{"gemini-3.8-flash": {"rpm": 150}}\'')
        ] = None,
        concurrency: Annotated[int, typer.Option(help="model calls in flight at once")] = 8,
        format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
        check_calls: Annotated[bool, typer.Option(help=CHECK_CALLS_HELP)] = True,
        budget_usd: Annotated[
            float | None,
            typer.Option("--budget-usd", help="show how many segments and videos this budget reaches"),
        ] = None,
    ) -> None:
        """Check the models (`v2s check`), split SOURCE and estimate tokens, dollars per tier and wall time;
        no stage's model is asked."""
        from pydantic import TypeAdapter, ValidationError

        from annotator.gateway.base import ModelCallError
        from annotator.settings import RateLimit
        from jobs.plan import PlanOptions, plan_job
        from jobs.runner import JobSpec
        from jobs.sources import SourceError

        checked_budgets(budget_usd=budget_usd)
        try:
            limits = None
            if rate_limits:
                limits = TypeAdapter(dict[str, RateLimit]).validate_python(json.loads(rate_limits))
            options = PlanOptions(
                tier=tier, rate_limits=limits, concurrency=concurrency, budget_usd=budget_usd
            )
            spec = JobSpec(
                source=source,
                out=out,
                database_url=database_url,
                max_segment_s=max_segment_s,
                num_cpus=num_cpus,
            )
        except (ValidationError, ValueError) as exc:
            typer.echo(f"error: {terminal_safe(str(exc).splitlines()[0])}", err=True)
            raise typer.Exit(2) from None
        shown = console if format == "table" else _quiet_console()
        try:
            result = plan_job(spec, options, shown, check_calls=check_calls)
        except (SourceError, ModelCallError) as exc:  # a model that failed the check: one line naming the fix
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None
        except refusals() as exc:
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None
        if format == "json":
            sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        else:
            print_plan(result)


def _quiet_console():
    from rich.console import Console

    return Console(file=sys.stderr)  # progress on stderr, so stdout is the JSON alone


def print_plan(plan) -> None:
    from rich.table import Table

    from annotator.pricing import TIERS

    table = Table(title=f"plan {escape(plan.job)}: {plan.segments} segments, {plan.footage_s / 3600:.2f} h")
    columns = ["stage", "model", "tier", "calls", "tokens in", "tokens out", "of which thinking"]
    columns += [f"$ {t}" for t in TIERS] + ["$ cached", "sizes from", "thinking from", "price from"]
    left = ("stage", "model", "tier", "sizes from", "thinking from", "price from")
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right")
    for s in plan.stages:
        cached = f"{s.cached_cost_usd['standard']:.4f}" if s.cached_cost_usd else "-"
        costs = [f"{s.cost_usd[t]:.4f}" for t in TIERS]
        row = [s.stage, escape(s.model), s.tier, str(s.calls), f"{s.input_tokens:,}", f"{s.output_tokens:,}"]
        row.append(f"{s.thinking_tokens:,}")
        table.add_row(*row, *costs, cached, s.basis, s.thinking_basis, escape(s.price_source))
    total = plan.total
    costs = [f"{total.cost_usd[t]:.4f}" for t in TIERS]
    row = ["total", "", "", str(total.calls), f"{total.input_tokens:,}", f"{total.output_tokens:,}"]
    row.append(f"{sum(s.thinking_tokens for s in plan.stages):,}")
    table.add_row(*row, *costs, f"{total.cached_cost_usd['standard']:.4f}", "", "", "")
    console.print(table)
    console.print(
        f"at the configured tiers: ${total.configured_cost_usd:.4f} "
        f"(${plan.usd_per_video_hour():.2f} per video-hour at standard); "
        f"wall time ≈ {plan.wall_time_s / 60:.1f} min, bound by {escape(plan.wall_time_bound)}",
        emoji=False,
    )
    if plan.budget is not None:
        reach = plan.budget
        console.print(
            f"budget ${reach.budget_usd:g} reaches {reach.segments} of {plan.segments} segments "
            f"({reach.videos} of {plan.videos} videos) at their expected cost (${reach.expected_usd:.4f}); "
            f"a run stops when less than one task's worst case (${reach.task_worst_case_usd:.4f}) is left",
            emoji=False,
        )
    for uri, error in plan.failed_videos.items():
        console.print(f"[red]input failed[/red] {escape(uri)}: {escape(error)}", emoji=False)
    table_file = f" from {escape(plan.price_table_file)}" if plan.price_table_file else " (bundled)"
    overrides = f"; V2S_PRICES prices {escape(', '.join(plan.overridden))}" if plan.overridden else ""
    console.print(
        f"[dim]prices: the catalog {escape(plan.price_table)}{table_file}{overrides}; thinking is billed as "
        f"output; the segments and proxies are kept for `v2s run` on the same --out[/dim]",
        emoji=False,
    )
