"""What `v2s run`, `v2s demo` and `v2s status` print."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from jobs.cli_common import escape
from jobs.status_report import StatusReport, Usage, status_report
from jobs.terminal import terminal_safe
from profiles_db.db import Database, shown_url
from profiles_db.lookups import canonical_characters
from profiles_db.stages import RunStatus, Stage, StageStore, VideoStatus
from workers.driver import RunSummary

# Every value from the database, a model or a file name reaches rich escaped (or as a Text), never as markup;
# the lines built with markup also turn off emoji codes, so a value such as "Mr :100:" is shown as written.
PROFILE_QUERY = "SELECT code, name, status, aliases, former_codes, appearance_history FROM v_character_profiles ORDER BY scope, code;"


def print_summary(console: Console, job_id: str, summary: RunSummary, db: Database, out: str) -> None:
    store = StageStore(db)
    progress = store.progress(job_id)
    usage = store.usage(job_id)
    characters = canonical_characters(db)
    failed = [(uri, error) for uri, status, error in store.videos(job_id) if status == VideoStatus.FAILED]
    table = Table(title=f"v2s job {escape(job_id)}", show_header=False)
    table.add_row(
        "videos",
        f"{summary.videos} ({summary.videos - len(summary.failed_videos)} ok, {len(summary.failed_videos)} failed)",
    )
    table.add_row("segments", str(summary.segments))
    for stage in Stage:
        counts = progress.get(stage, {})
        table.add_row(f"  {stage}", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-")
    table.add_row("records written", str(summary.records_written))
    table.add_row("characters (canonical)", str(characters))
    table.add_row("tokens in / out", f"{usage['input_tokens']:,} / {usage['output_tokens']:,}")
    table.add_row("cost (USD)", f"{usage['cost_usd']:.4f}")
    table.add_row("shards", escape(f"{out}/shards (manifest: {out}/manifest.json)"))
    table.add_row("database", escape(shown_url(db.url)))
    console.print(table)
    for entry in getattr(store.job(job_id), "skipped_inputs", None) or []:
        line = f"[yellow]skipped input[/yellow] {escape(entry['uri'])}: {escape(entry['reason'])}"
        console.print(line, emoji=False)
    for uri, error in failed:
        console.print(f"[red]failed input[/red] {escape(uri)}: {escape(str(error))}", emoji=False)
    for failure in summary.stage_failures:
        console.print(
            f"[yellow]segment {failure.segment_id}[/yellow] "
            f"{escape(failure.status)}: {escape(failure.why())}",
            emoji=False,
        )
    for scope, block in summary.blocked_chains.items():
        console.print(
            f"[red]memory chain of {escape(scope)} waits[/red] at segment {block['segment_id']} "
            f"({block['waiting']} plots after it not reasoned, its videos not exported): "
            f"{escape(str(block['error']))}\n  continue it: v2s resume {escape(job_id)} "
            f"(or give that plot up: --give-up {block['segment_id']})",
            emoji=False,
            soft_wrap=True,
        )
    for old in summary.superseded:
        console.print(
            f"[yellow]changed source[/yellow] {escape(old['uri'])}: {escape(old['note'])}; the old version's "
            f"{old['stages_closed']} unfinished stages closed, {old['records_retired']} records taken out of "
            "the output (kept in the database as history)",
            emoji=False,
            soft_wrap=True,
        )
    for repair in summary.repairs:
        console.print(f"[yellow]output repaired[/yellow] {escape(repair)}", emoji=False)
    console.print("\nSee the character profiles with SQL:")
    console.print(
        escape(
            f'  sqlite3 {db.url.removeprefix("sqlite:///")} "{PROFILE_QUERY}"'
            if db.url.startswith("sqlite")
            else f'  psql … -c "{PROFILE_QUERY}"'
        ),
        soft_wrap=True,
        emoji=False,
    )


STATUS_COLUMNS = tuple(RunStatus)
MAX_WARNINGS = 20  # CPM warnings `v2s status` lists; the rest are counted ("… and N more")


def status_view(db: Database, job_id: str | None):
    """What `v2s status` shows (a rich renderable, so --watch can refresh it in a Live): the StatusReport that
    `--format json` prints, drawn, so the table and the JSON never count differently."""
    from rich.console import Group

    report = status_report(db, job_id)
    counted = ", ".join(f"{k} {v}" for k, v in report.videos.items()) or "-"
    videos = sum(report.videos.values())
    parts: list = [_jobs_table(report), Text(f"videos {videos} ({counted}), segments {report.segments}")]
    parts.extend(_usage_tables(report))
    parts.extend(_batch_tables(report))
    parts.extend(_shard_lines(report))
    parts.extend(_input_lines(report))
    parts.extend(_superseded_lines(report))
    parts.extend(_failure_lines(report))
    parts.extend(_chain_lines(report))
    parts.extend(_budget_lines(report))
    parts.extend(_warning_lines(report))
    return Group(*parts)


def _budget_lines(report: StatusReport) -> list[Text]:
    """Each budgeted job: its budget and spend; a paused one, the command that goes on."""
    lines = []
    for b in report.budgets:
        parts = []
        if b.limit_usd is not None:
            parts.append(f"budget ${b.limit_usd:g} spent ${b.spent_usd:.4f}")
        else:
            parts.append(f"spent ${b.spent_usd:.4f}")
        if b.segment_limit_usd is not None:
            parts.append(f"segment ceiling ${b.segment_limit_usd:g}")
        line = f"{b.job}: " + ", ".join(parts)
        if b.paused:
            line = f"paused at its budget: {line}; resume with --budget-usd {b.resume_usd:g}"
            line += f" (v2s resume {b.job} --budget-usd {b.resume_usd:g})"
        lines.append(Text(terminal_safe(line)))
    return lines


def _jobs_table(report: StatusReport) -> Table:
    table = Table(title="jobs")
    for column in ("job", "status", "source", "out"):
        table.add_column(column)
    for j in report.jobs:
        table.add_row(*(escape(str(value)) for value in (j.id, j.status, j.source, j.out)))
    return table


def _tokens(u: Usage) -> tuple[str, str, str]:
    return f"{u.input_tokens:,}", f"{u.output_tokens:,}", f"{u.cost_usd:.4f}"


def _usage_tables(report: StatusReport) -> list[Table]:
    """Per stage: how many segments are in each status, with tokens and cost; then the cost per video."""
    stages = Table(title=f"stages of {escape(report.job) if report.job else 'all jobs'}")
    for column in ("stage", *STATUS_COLUMNS, "tokens in", "tokens out", "cost USD"):
        stages.add_column(column, justify="right" if column != "stage" else "left")
    for row in report.stages:
        statuses = (str(getattr(row, status)) for status in STATUS_COLUMNS)
        stages.add_row(row.stage, *statuses, *_tokens(row))
    stages.add_row("job", *("" for _ in STATUS_COLUMNS), *_tokens(report.total))
    tables = [stages]
    if len(report.per_tier) > 1 or any(t.tier != "standard" for t in report.per_tier):
        tables.append(_usage_table("per service tier", "tier", [(t.tier, t) for t in report.per_tier]))
    if report.per_video:
        tables.append(_usage_table("per video", "video", [(v.uri, v) for v in report.per_video]))
    return tables


def _usage_table(title: str, what: str, rows: list[tuple[str, Usage]]) -> Table:
    table = Table(title=title)
    for column in (what, "tokens in", "tokens out", "cost USD"):
        table.add_column(column)
    for name, usage in rows:
        table.add_row(escape(name), *_tokens(usage))
    return table


def _batch_tables(report: StatusReport) -> list[Table]:
    """What waits in open provider batches (paid when they finish)."""
    if not report.open_batches:
        return []
    table = Table(title="open batches (waiting at the batch tier)")
    for column in ("batch", "stage", "model", "wave", "attempt", "requests", "est. input USD", "open for"):
        table.add_column(column, justify="right" if column not in ("batch", "stage", "model") else "left")
    for b in report.open_batches:
        table.add_row(
            escape(b.name),
            escape(b.stage),
            escape(b.model),
            str(b.wave or "-"),
            str(b.attempt),
            str(b.items),
            f"{b.estimated_cost_usd:.4f}",
            f"{b.age_s:.0f} s",
        )
    total = sum(b.estimated_cost_usd for b in report.open_batches)
    table.caption = (
        f"{sum(b.items for b in report.open_batches)} requests, about ${total:.4f} of input waiting"
    )
    return [table]


def _shard_lines(report: StatusReport) -> list[Text]:
    lines = []
    for written in report.shards:
        if written.error is not None:
            state = f"unknown here, its manifest cannot be read ({written.error})"
        elif written.shards is None:
            state = "none yet"
        else:
            state = f"{written.shards} ({written.records} records)"
        lines.append(Text(terminal_safe(f"shards written to {written.out}: {state}")))
    return lines


def _input_lines(report: StatusReport) -> list[Text]:
    """The source's entries the listing left out, and why (one line each: they are few, and each is a fix)."""
    if not report.skipped_inputs:
        return []
    count = len(report.skipped_inputs)
    lines = [Text.from_markup(f"[yellow]skipped inputs[/yellow] {count} not processed:", emoji=False)]
    lines.extend(Text(terminal_safe(f"  {entry.uri}: {entry.reason}")) for entry in report.skipped_inputs)
    return lines


def _failure_lines(report: StatusReport) -> list[Text]:
    lines = [
        Text.from_markup(f"[red]input failed[/red] {escape(f.uri)}: {escape(f.error or '')}", emoji=False)
        for f in report.failed_inputs
    ]
    for f in report.failures:
        lines.append(
            Text.from_markup(
                f"[yellow]{escape(f.status)}[/yellow] {escape(f.uri)} segment {f.segment_index} "
                f"{escape(f.stage)}: {escape(f.error or '')} [dim]({escape(str(f.outcome))})[/dim]",
                emoji=False,
            )
        )
    return lines


def _chain_lines(report: StatusReport) -> list[Text]:
    """Scopes whose memory chain waits at a failed plot: nothing after it is reasoned or exported until
    `v2s resume` continues it (or `--give-up` steps over it)."""
    lines = []
    resume = f"v2s resume {escape(report.job)}" if report.job else "v2s resume JOB"
    for chain in report.blocked_chains:
        lines.append(
            Text.from_markup(
                f"[red]memory chain waits[/red] {escape(chain.scope)} at {escape(chain.uri)} segment "
                f"{chain.segment_index} (id {chain.segment_id}, {escape(str(chain.outcome))}): {chain.waiting} "
                f"later plots and the scope's export wait; {resume} continues it, --give-up "
                f"{chain.segment_id} steps over it",
                emoji=False,
            )
        )
    return lines


def _warning_lines(report: StatusReport) -> list[Text]:
    """The values the CPM dropped or cut by design (stored in the plot results), per segment, capped."""
    total = sum(len(w.warnings) for w in report.warnings)
    if not total:
        return []
    segments = len(report.warnings)
    lines = [
        Text.from_markup(
            f"[yellow]warnings[/yellow] {total} from the character memory "
            f"({segments} segment{'s' if segments != 1 else ''}; model values dropped or cut):"
        )
    ]
    shown = 0
    for found in report.warnings:
        if shown >= MAX_WARNINGS:
            break
        lines.append(Text(terminal_safe(f"  {found.uri} segment {found.segment_index}")))
        for warning in found.warnings[: MAX_WARNINGS - shown]:
            lines.append(Text(terminal_safe(f"    {warning}")))
            shown += 1
    if total > shown:
        lines.append(Text(f"  … and {total - shown} more"))
    return lines


def _superseded_lines(report: StatusReport) -> list[Text]:
    """Sources that changed under the same name: the old version is closed and out of the output."""
    return [
        Text.from_markup(
            f"[yellow]changed source[/yellow] {escape(v.uri)}: {escape(v.note or '')}; version {escape(v.video_id)} "
            f"superseded by {escape(v.superseded_by)}, its records out of the output (kept as history)",
            emoji=False,
        )
        for v in report.superseded
    ]
