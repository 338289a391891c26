"""What `v2s run`, `v2s demo` and `v2s status` print."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

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
