"""The budget options of `v2s run`, `resume`, `submit` and `plan`, their one-line refusal, and the line a run
prints when it stopped at its budget (docs/cli.md#budgets)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.terminal import terminal_safe

# Exit status of `v2s run` / `v2s resume` when the job stopped at its budget: not done, nothing failed;
# `v2s resume JOB --budget-usd MORE` goes on.
EXIT_PAUSED = 3

BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget-usd",
        help="stop before the job's spend (over all its runs) could pass this many US dollars: no new model "
        "call starts unless its worst case fits; the job ends `paused` (exit 3) and resumes with a larger one",
    ),
]
SegmentBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--segment-budget-usd",
        help="a segment whose recorded cost reached this many US dollars gets no further stage: it is given "
        "up (rejected, outcome budget) instead of paying for more",
    ),
]


def checked_budgets(**given: float | None) -> None:
    """Refuse a budget that is not a positive number of dollars: one line, exit status 2, nothing done."""
    from jobs.runner import positive_usd

    for name, value in given.items():
        try:
            positive_usd(value, "--" + name.replace("_", "-"))
        except ValueError as exc:
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(2) from None


def budgeted_spec(*, budget_usd: float | None, segment_budget_usd: float | None, **spec: object):
    """A new job's spec, its budgets checked first (one line, exit 2, before anything is created)."""
    from jobs.runner import JobSpec

    checked_budgets(budget_usd=budget_usd, segment_budget_usd=segment_budget_usd)
    return JobSpec(budget_usd=budget_usd, segment_budget_usd=segment_budget_usd, **spec)


def paused_line(job_id: str, budget: dict) -> str:
    """What a run that stopped at its budget prints: the budget, the spend, and the command to go on."""
    return (
        f"paused at its budget: budget ${budget['limit_usd']:g} spent ${budget['spent_usd']:.4f}; the next "
        f"task could cost up to ${budget['next_task_usd']:.4f}. Resume with "
        f"v2s resume {job_id} --budget-usd {budget['resume_usd']:g}"
    )
