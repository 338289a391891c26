"""Tables in the layout of the paper's Tables 1 (event level) and 2 (scene level), figures in percent; then the
v2s additions (not in the paper) under a heading that says so."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaluation.core import DatasetResult
from evaluation.identity import UNLABELLED, IdentityCluster, IdentityResult
from evaluation.metrics import LevelResult
from evaluation.schema import EVENT_FIELDS, SCENE_FIELDS

EVENT_LABELS = {
    "character": "Char.",
    "dialogue": "Dia.",
    "action": "Act.",
    "expression": "Exp.",
    "audio_cue": "Aud.",
}
SCENE_LABELS = {"location": "Loc.", "type": "Type", "environment": "Env.", "time": "Time", "mood": "Mood"}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _field_table(title: str, level: LevelResult, labels: dict[str, str], names: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for name in names:
        table.add_column(labels[name], justify="right")
    table.add_column("Overall", justify="right", style="bold")
    overall = level.overall()
    for row, attr in (("P", "precision"), ("R", "recall"), ("F1", "f1")):
        cells = [pct(getattr(level.fields[n], attr)) for n in names]
        table.add_row(row, *cells, pct(overall[attr]))
    counts = [f"{level.fields[n].score:.1f}/{level.fields[n].n_pred}/{level.fields[n].n_gt}" for n in names]
    table.add_row("S/Np/Ng", *counts, "", style="dim")
    return table


def _temporal_table(result: DatasetResult) -> Table:
    table = Table(title="Temporal localisation (tIoU hit rate)", title_justify="left")
    table.add_column("t", justify="right")
    for level in ("Event", "Scene"):
        table.add_column(f"{level} P", justify="right")
        table.add_column(f"{level} R", justify="right")
        table.add_column(f"{level} tIoU@t", justify="right", style="bold")
    for t in result.events.temporal:
        ev, sc = result.events.temporal[t], result.scenes.temporal.get(t)
        cells = [pct(ev.precision), pct(ev.recall), pct(ev.f1)]
        cells += [pct(sc.precision), pct(sc.recall), pct(sc.f1)] if sc else ["–"] * 3
        table.add_row(f"{t:g}", *cells)
    return table


def _videos_table(result: DatasetResult) -> Table:
    table = Table(title="Per video", title_justify="left")
    for name in ("id", "events Overall", "events tIoU@0.1", "scenes Overall", "scenes tIoU@0.1"):
        table.add_column(name, justify="left" if name == "id" else "right")
    table.add_column("event groups (aligned/miss/halluc.)", justify="right")
    for video in result.videos:
        g = video.events.groups
        table.add_row(
            video.id,
            pct(video.events.overall()["f1"]),
            pct(video.events.tiou(0.1)),
            pct(video.scenes.overall()["f1"]),
            pct(video.scenes.tiou(0.1)),
            f"{g.get('aligned', 0)}/{g.get('miss', 0)}/{g.get('hallucination', 0)}",
        )
    return table


IDENTITY_HEADING = "Character identity, B-cubed · v2s addition, not in the paper"


def _identity_row(name: str, identity: IdentityResult) -> list[Text | str]:
    return [
        Text(name),
        pct(identity.precision),
        pct(identity.recall),
        pct(identity.f1),
        f"{identity.items}/{identity.cast_events}",
        str(len(identity.worst_splits(None))),
        str(len(identity.worst_mixes(None))),
    ]


def _identity_table(result: DatasetResult) -> Table:
    table = Table(title=f"{IDENTITY_HEADING} (per {result.identity_scope})", title_justify="left")
    table.add_column("")
    for name in ("P", "R", "F1"):
        table.add_column(name, justify="right", style="bold" if name == "F1" else None)
    table.add_column("items/cast GT events", justify="right")
    table.add_column("split characters", justify="right")
    table.add_column("mixed ids", justify="right")
    if len(result.videos) > 1:
        for video in result.videos:
            table.add_row(*_identity_row(video.id, video.identity))
    table.add_row(*_identity_row("All (items pooled)", result.identity), style="bold")
    return table


def _offender(cluster: IdentityCluster, unit: str, with_scope: bool) -> Text:
    """One offender, e.g. `Nora → 2 ids: char_001 ×6, char_004 ×2`, as plain text (names are never markup)."""
    counts = sorted(cluster.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = ", ".join(f"{label or '(unnamed)'} ×{n}" for label, n in counts)
    head = f"{cluster.scope} · {cluster.label}" if with_scope else cluster.label
    return Text(f"  {head} → {cluster.distinct} {unit}: {parts}")


def _print_identity(result: DatasetResult, console: Console, top: int = 5) -> None:
    identity = result.identity
    console.print(_identity_table(result))
    with_scope = len({c.scope for c in identity.splits}) > 1
    splits, mixes = identity.worst_splits(top), identity.worst_mixes(top)
    if splits:
        console.print(Text("Worst splits (one true character, several predicted ids):", style="bold"))
        for cluster in splits:
            console.print(_offender(cluster, "ids", with_scope))
    if mixes:
        console.print(Text("Worst mixes (one predicted id, several true characters):", style="bold"))
        for cluster in mixes:
            console.print(_offender(cluster, "characters", with_scope))
    if identity.items and not splits and not mixes:
        console.print(Text("  no true character split, no predicted id mixed"))
    if any(UNLABELLED in c.counts for c in identity.splits):
        console.print(
            Text("  (unnamed): predicted events with no character; each counts as an identity of its own")
        )


def print_tables(result: DatasetResult, console: Console | None = None, judge: str = "lexical") -> None:
    console = console or Console()
    g = result.events.groups
    console.print(
        f"[bold]V2S evaluation[/bold] · {len(result.videos)} video(s) · judge {judge} · event groups "
        f"{g.get('aligned', 0)} aligned, {g.get('miss', 0)} missed, {g.get('hallucination', 0)} hallucinated"
    )
    console.print(_field_table("Event level (Table 1)", result.events, EVENT_LABELS, EVENT_FIELDS))
    console.print(_field_table("Scene level (Table 2)", result.scenes, SCENE_LABELS, SCENE_FIELDS))
    console.print(_temporal_table(result))
    if len(result.videos) > 1:
        console.print(_videos_table(result))
    _print_identity(result, console)
    if result.missing_predictions:
        console.print(
            f"[yellow]no prediction for:[/yellow] {', '.join(result.missing_predictions)} (scored as misses)"
        )
    if result.unmatched_predictions:
        console.print(
            f"[yellow]predictions without GT (skipped):[/yellow] {', '.join(result.unmatched_predictions)}"
        )
