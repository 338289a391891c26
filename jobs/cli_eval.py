"""`v2s eval`: the evaluation's command, with a run's database as one more source of ground truth.

`--gt OUT` (a run's output folder) scores against the corrections reviewers made of that run (`v2s review
import`), and only the reviewed segments of `--pred`; any other `--gt` is read by `evaluation.load_scripts`."""

from __future__ import annotations

from evaluation.cli import (
    FormatOption,
    GroupSizeOption,
    GtOption,
    IdentityScopeOption,
    JudgeOption,
    OutOption,
    PredOption,
    check_options,
    score_and_report,
)
from jobs.cli_common import DatabaseUrlOpt, db_for
from jobs.terminal import terminal_safe


def register(app) -> None:
    app.command("eval", help="Score scripts against ground truth with the V2S metrics.")(eval_command)


def eval_command(
    gt: GtOption,
    pred: PredOption,
    judge: JudgeOption = "lexical",
    format: FormatOption = "table",
    group_size: GroupSizeOption = 3,
    out: OutOption = None,
    identity_scope: IdentityScopeOption = "video",
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Score scripts with the paper's V2S metrics (§4.1), plus v2s's character identity figure. --gt OUT (a
    run's output folder) means the reviewers' corrections in its database, on the reviewed segments only."""
    import typer

    from jobs.review.ground_truth import corrected_pair, is_run_output

    check_options(gt, pred, judge=judge, format=format, identity_scope=identity_scope)
    gt_source, pred_source = gt, pred
    if is_run_output(gt):
        db = db_for(str(gt), database_url)
        try:
            gt_source, pred_source = corrected_pair(db, pred)
        except ValueError as exc:
            typer.echo(f"error: {terminal_safe(exc)}", err=True)
            raise typer.Exit(code=1) from None
        finally:
            db.dispose()
    score_and_report(
        gt_source,
        pred_source,
        judge=judge,
        format=format,
        group_size=group_size,
        out=out,
        identity_scope=identity_scope,
    )
