"""What `v2s run`, `v2s demo` and `v2s status` print."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select, true

from profiles_db.db import Database
from profiles_db.models import Character, Video
from profiles_db.stages import StageStore
from workers.driver import RunSummary

PROFILE_QUERY = "SELECT code, name, status, aliases, former_codes, appearance_history FROM v_character_profiles ORDER BY scope, code;"


def print_summary(console: Console, job_id: str, summary: RunSummary, db: Database, out: str) -> None:
    store = StageStore(db)
    progress = store.progress(job_id)
    usage = store.usage(job_id)
    with db.sessions() as s:
        characters = s.scalar(
            select(func.count()).select_from(Character).where(Character.merged_into.is_(None))
        )
        failed = s.execute(
            select(Video.uri, Video.error).where(Video.status == "failed", Video.job_id == job_id)
        ).all()
    table = Table(title=f"v2s job {job_id}", show_header=False)
    table.add_row(
        "videos",
        f"{summary.videos} ({summary.videos - len(summary.failed_videos)} ok, {len(summary.failed_videos)} failed)",
    )
    table.add_row("segments", str(summary.segments))
    for stage in ("plot", "script", "distill", "export"):
        counts = progress.get(stage, {})
        table.add_row(f"  {stage}", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-")
    table.add_row("records written", str(summary.records_written))
    table.add_row("characters (canonical)", str(characters))
    table.add_row("tokens in / out", f"{usage['input_tokens']:,} / {usage['output_tokens']:,}")
    table.add_row("cost (USD)", f"{usage['cost_usd']:.4f}")
    table.add_row("shards", f"{out}/shards (manifest: {out}/manifest.json)")
    table.add_row("database", db.url)
    console.print(table)
    for uri, error in failed:
        console.print(f"[red]failed input[/red] {uri}: {error}")
    for failure in summary.stage_failures:
        console.print(
            f"[yellow]segment {failure.get('segment_id')}[/yellow] {failure.get('status')}: "
            f"{failure.get('error') or '; '.join(failure.get('problems', [])) or failure.get('reason', '')}"
        )
    console.print("\nSee the character profiles with SQL:")
    console.print(
        f'  sqlite3 {db.url.removeprefix("sqlite:///")} "{PROFILE_QUERY}"'
        if db.url.startswith("sqlite")
        else f'  psql … -c "{PROFILE_QUERY}"',
        soft_wrap=True,
    )


STATUS_COLUMNS = ("pending", "running", "done", "failed", "rejected")


def read_manifest(out: str) -> dict | None:
    """The output's manifest.json (local folder or bucket), or None before the first shard is closed."""
    import json

    from workers.storage import filesystem, join

    try:
        fs, path = filesystem(join(out, "manifest.json"))
        with fs.open(path, "r") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def status_view(db: Database, job_id: str | None):
    """What `v2s status` shows (a rich renderable, so --watch can refresh it in a Live)."""
    from rich.console import Group
    from rich.text import Text

    from profiles_db.models import Job, Segment, StageRun
    from profiles_db.stages import usage_breakdown

    store = StageStore(db)
    parts: list = []
    with db.sessions() as s:
        jobs = s.scalars(select(Job).order_by(Job.created_at)).all()
        if job_id:
            jobs = [j for j in jobs if j.id == job_id]
        video_query = select(Video.uri, Video.status, Video.error)
        failure_query = (
            select(Video.uri, Segment.idx, StageRun.stage, StageRun.status, StageRun.outcome, StageRun.error)
            .join(Segment, Segment.id == StageRun.segment_id)
            .join(Video, Video.id == Segment.video_id)
            .where(StageRun.status.in_(["failed", "rejected"]))
            .order_by(Video.uri, Segment.idx, StageRun.stage)
        )
        if job_id:
            video_query = video_query.where(Video.job_id == job_id)
            failure_query = failure_query.where(Video.job_id == job_id)
        videos = s.execute(video_query).all()
        failures = s.execute(failure_query).all()
        segments = s.scalar(
            select(func.count())
            .select_from(Segment)
            .join(Video)
            .where(Video.job_id == job_id if job_id else true())
        )
    jobs_table = Table(title="jobs")
    for column in ("job", "status", "source", "out"):
        jobs_table.add_column(column)
    for j in jobs:
        jobs_table.add_row(j.id, j.status, j.source, j.out)
    parts.append(jobs_table)

    video_counts: dict[str, int] = {}
    for _, status, _ in videos:
        video_counts[status] = video_counts.get(status, 0) + 1
    parts.append(
        Text(
            f"videos {len(videos)} ({', '.join(f'{k} {v}' for k, v in sorted(video_counts.items())) or '-'}), "
            f"segments {segments}"
        )
    )
    usage = usage_breakdown(db, job_id)
    progress = store.progress(job_id)
    stages = Table(title=f"stages of {job_id or 'all jobs'}")
    for column in ("stage", *STATUS_COLUMNS, "tokens in", "tokens out", "cost USD"):
        stages.add_column(column, justify="right" if column != "stage" else "left")
    for stage in ("plot", "script", "distill", "export"):
        counts = dict(progress.get(stage, {}))
        counts["pending"] = counts.get("pending", 0) + max(0, segments - sum(counts.values()))
        u = usage["stage"].get(stage, {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        stages.add_row(
            stage,
            *(str(counts.get(k, 0)) for k in STATUS_COLUMNS),
            f"{u['input_tokens']:,}",
            f"{u['output_tokens']:,}",
            f"{u['cost_usd']:.4f}",
        )
    total = store.usage(job_id)
    stages.add_row(
        "job",
        *("" for _ in STATUS_COLUMNS),
        f"{total['input_tokens']:,}",
        f"{total['output_tokens']:,}",
        f"{total['cost_usd']:.4f}",
    )
    parts.append(stages)
    if usage["video"]:
        per_video = Table(title="per video")
        for column in ("video", "tokens in", "tokens out", "cost USD"):
            per_video.add_column(column)
        for uri, u in usage["video"].items():
            per_video.add_row(
                uri, f"{u['input_tokens']:,}", f"{u['output_tokens']:,}", f"{u['cost_usd']:.4f}"
            )
        parts.append(per_video)
    for j in jobs:
        manifest = read_manifest(j.out)
        if manifest is not None:
            parts.append(
                Text(f"shards written to {j.out}: {len(manifest['shards'])} ({manifest['records']} records)")
            )
        else:
            parts.append(Text(f"shards written to {j.out}: none yet"))
    for uri, status, error in videos:
        if status == "failed":
            parts.append(Text.from_markup(f"[red]input failed[/red] {escape(uri)}: {escape(error or '')}"))
    for uri, idx, stage, status, outcome, error in failures:
        parts.append(
            Text.from_markup(
                f"[yellow]{status}[/yellow] {escape(uri)} segment {idx} {stage}: {escape(error or '')}"
                f" [dim]({outcome})[/dim]"
            )
        )
    return Group(*parts)
