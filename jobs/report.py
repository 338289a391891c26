"""What `v2s run`, `v2s demo` and `v2s status` print."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from profiles_db.db import Database, shown_url
from profiles_db.models import Character
from profiles_db.stages import RunStatus, Stage, StageStore, VideoStatus
from workers.driver import RunSummary

# Every value from the database, a model or a file name reaches rich escaped (or as a Text), never as markup;
# the lines built with markup also turn off emoji codes, so a value such as "Mr :100:" is shown as written.
PROFILE_QUERY = "SELECT code, name, status, aliases, former_codes, appearance_history FROM v_character_profiles ORDER BY scope, code;"


def print_summary(console: Console, job_id: str, summary: RunSummary, db: Database, out: str) -> None:
    store = StageStore(db)
    progress = store.progress(job_id)
    usage = store.usage(job_id)
    with db.sessions() as s:
        characters = s.scalar(
            select(func.count()).select_from(Character).where(Character.merged_into.is_(None))
        )
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


class ManifestUnreadable(Exception):
    """The manifest exists (or may) but cannot be read from here: no bucket credentials, access denied..."""


def read_manifest(out: str) -> dict | None:
    """The output's manifest.json (local folder or bucket), or None before the first shard is closed.
    ManifestUnreadable (one line, no secret) when it cannot be read from this machine."""
    import json

    from workers.storage import filesystem, join

    try:
        fs, path = filesystem(join(out, "manifest.json"))
        with fs.open(path, "r") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
    except Exception as exc:  # botocore's NoCredentialsError, PermissionError, an unreachable endpoint...
        raise ManifestUnreadable(
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def status_view(db: Database, job_id: str | None):
    """What `v2s status` shows (a rich renderable, so --watch can refresh it in a Live)."""
    from rich.console import Group

    store = StageStore(db)
    jobs = store.jobs(job_id)
    videos = store.videos(job_id)
    segments = store.segment_count(job_id)
    video_counts: dict[str, int] = {}
    for _, status, _ in videos:
        video_counts[status] = video_counts.get(status, 0) + 1
    counted = ", ".join(f"{k} {v}" for k, v in sorted(video_counts.items())) or "-"
    parts: list = [_jobs_table(jobs), Text(f"videos {len(videos)} ({counted}), segments {segments}")]
    parts.extend(_usage_tables(store, job_id, segments))
    parts.extend(_shard_lines(jobs))
    parts.extend(_failure_lines(videos, store.failures(job_id)))
    parts.extend(_chain_lines(store, job_id))
    parts.extend(_warning_lines(store.plot_warnings(job_id)))
    return Group(*parts)


def _jobs_table(jobs) -> Table:
    table = Table(title="jobs")
    for column in ("job", "status", "source", "out"):
        table.add_column(column)
    for j in jobs:
        table.add_row(*(escape(str(value)) for value in (j.id, j.status, j.source, j.out)))
    return table


def _tokens(u: dict[str, float]) -> tuple[str, str, str]:
    return f"{u['input_tokens']:,}", f"{u['output_tokens']:,}", f"{u['cost_usd']:.4f}"


def _usage_tables(store: StageStore, job_id: str | None, segments: int) -> list[Table]:
    """Per stage: how many segments are in each status, with tokens and cost; then the cost per video."""
    usage = store.usage_breakdown(job_id)
    progress = store.progress(job_id)
    stages = Table(title=f"stages of {escape(job_id) if job_id else 'all jobs'}")
    for column in ("stage", *STATUS_COLUMNS, "tokens in", "tokens out", "cost USD"):
        stages.add_column(column, justify="right" if column != "stage" else "left")
    none = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    for stage in Stage:
        counts = dict(progress.get(stage, {}))
        counts[RunStatus.PENDING] = counts.get(RunStatus.PENDING, 0) + max(0, segments - sum(counts.values()))
        statuses = (str(counts.get(k, 0)) for k in STATUS_COLUMNS)
        stages.add_row(stage, *statuses, *_tokens(usage["stage"].get(stage, none)))
    stages.add_row("job", *("" for _ in STATUS_COLUMNS), *_tokens(store.usage(job_id)))
    if not usage["video"]:
        return [stages]
    per_video = Table(title="per video")
    for column in ("video", "tokens in", "tokens out", "cost USD"):
        per_video.add_column(column)
    for uri, u in usage["video"].items():
        per_video.add_row(escape(uri), *_tokens(u))
    return [stages, per_video]


def _shard_lines(jobs) -> list[Text]:
    lines = []
    for j in jobs:
        try:
            manifest = read_manifest(j.out)
        except ManifestUnreadable as exc:
            lines.append(
                Text(f"shards written to {j.out}: unknown here, its manifest cannot be read ({exc})")
            )
            continue
        if manifest is None:
            lines.append(Text(f"shards written to {j.out}: none yet"))
        else:
            written = f"{len(manifest['shards'])} ({manifest['records']} records)"
            lines.append(Text(f"shards written to {j.out}: {written}"))
    return lines


def _failure_lines(videos, failures) -> list[Text]:
    lines = [
        Text.from_markup(f"[red]input failed[/red] {escape(uri)}: {escape(error or '')}", emoji=False)
        for uri, status, error in videos
        if status == VideoStatus.FAILED
    ]
    for f in failures:
        lines.append(
            Text.from_markup(
                f"[yellow]{escape(f.status)}[/yellow] {escape(f.uri)} segment {f.segment_index} "
                f"{escape(f.stage)}: {escape(f.error or '')} [dim]({escape(str(f.outcome))})[/dim]",
                emoji=False,
            )
        )
    return lines


def _chain_lines(store: StageStore, job_id: str | None) -> list[Text]:
    """Scopes whose memory chain waits at a failed plot: nothing after it is reasoned or exported until
    `v2s resume` continues it (or `--give-up` steps over it)."""
    lines = []
    for scope, segment_id, outcome, later in store.blocked_chains(job_id):
        uri, idx = store.segment_place(segment_id)
        resume = f"v2s resume {escape(job_id)}" if job_id else "v2s resume JOB"
        lines.append(
            Text.from_markup(
                f"[red]memory chain waits[/red] {escape(scope)} at {escape(uri)} segment {idx} "
                f"(id {segment_id}, {escape(str(outcome))}): {later} later plots and the "
                f"scope's export wait; {resume} continues it, --give-up {segment_id} steps over it",
                emoji=False,
            )
        )
    return lines


def _warning_lines(warnings: list[tuple[str, int, list]]) -> list[Text]:
    """The values the CPM dropped or cut by design (stored in the plot results), per segment, capped."""
    total = sum(len(w) for _, _, w in warnings)
    if not total:
        return []
    lines = [
        Text.from_markup(
            f"[yellow]warnings[/yellow] {total} from the character memory "
            f"({len(warnings)} segment{'s' if len(warnings) != 1 else ''}; model values dropped or cut):"
        )
    ]
    shown = 0
    for uri, idx, found in warnings:
        if shown >= MAX_WARNINGS:
            break
        lines.append(Text(f"  {uri} segment {idx}"))
        for warning in found[: MAX_WARNINGS - shown]:
            lines.append(Text(f"    {warning}"))
            shown += 1
    if total > shown:
        lines.append(Text(f"  … and {total - shown} more"))
    return lines
