"""The options and the scoring of `v2s eval` (the command itself is jobs/cli_eval.py, which adds a run's
database as a source of ground truth): score predicted scripts against ground truth and print the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from evaluation.alignment import AlignSettings
from evaluation.core import EvalSettings, evaluate_dataset
from evaluation.judges import JudgeError, get_judge
from evaluation.report import print_tables
from evaluation.schema import Script

# The options as types, so the command's signature reads as a list of what it takes.
GtOption = Annotated[
    Path,
    typer.Option(
        "--gt",
        help="Ground truth: a script/screenplay JSON, a JSONL of output records, or a folder of those.",
    ),
]
PredOption = Annotated[
    Path, typer.Option("--pred", help="Predictions, in the same forms; matched to the ground truth by id.")
]
JudgeOption = Annotated[
    str,
    typer.Option(
        "--judge",
        help="lexical (offline, deterministic) or llm (OpenAI-compatible model from V2S_JUDGE_BASE_URL, "
        "V2S_JUDGE_API_KEY or OPENAI_API_KEY, V2S_JUDGE_MODEL; answers cached on disk).",
    ),
]
FormatOption = Annotated[
    str, typer.Option("--format", help="table (like the paper's Tables 1 and 2) or json.")
]
GroupSizeOption = Annotated[
    int, typer.Option("--group-size", min=1, help="Largest N of the 1-to-N / N-to-1 alignment groups.")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", help="Also write the full JSON report (per video) to this file.")
]
IdentityScopeOption = Annotated[
    str,
    typer.Option(
        "--identity-scope",
        help="Identity metric (v2s addition): 'video' (identities never cross videos) or 'series' "
        "(episodes of one series share identities, as the CPM keeps them).",
    ),
]

_CHOICES = {
    "--judge": ("lexical", "llm"),
    "--format": ("table", "json"),
    "--identity-scope": ("video", "series"),
}


def check_options(gt: Path, pred: Path, *, judge: str, format: str, identity_scope: str) -> None:
    """The choices and paths of `v2s eval`, refused the way the command line refuses a bad option."""
    for option, value in (("--judge", judge), ("--format", format), ("--identity-scope", identity_scope)):
        if value not in _CHOICES[option]:
            first, second = _CHOICES[option]
            raise typer.BadParameter(f"use '{first}' or '{second}'", param_hint=option)
    for name, path in (("--gt", gt), ("--pred", pred)):
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist", param_hint=name)


def score_and_report(
    gt: Path | Mapping[str, Script],
    pred: Path | Mapping[str, Script],
    *,
    judge: str,
    format: str,
    group_size: int,
    out: Path | None,
    identity_scope: str,
) -> None:
    """Score `pred` against `gt` (paths `load_scripts` reads, or scripts by id) and print the report."""
    try:
        result = evaluate_dataset(
            gt,
            pred,
            judge=get_judge(judge),
            settings=EvalSettings(align=AlignSettings(group_size=group_size), identity_scope=identity_scope),
        )
    except (JudgeError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    report = result.to_dict(per_video=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    if format == "json":
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_tables(result, judge=judge)
