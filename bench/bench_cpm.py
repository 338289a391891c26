"""Benchmark of the Character Profile Manager at cluster size (figures only, no assertions).

1. Fill: a fresh PostgreSQL database (`v2s_bench_cpm`, dropped at the end) gets --videos videos and
   --characters characters, with what a real run leaves behind: segments, aliases (name + nicknames),
   observations (each character seen in about half of the segments, costume changes included), relationships,
   segment plots, name events (lazy naming) and merges. Rows go in with executemany through SQLAlchemy core,
   in chunks of videos; the sequences are moved past the explicit ids afterwards.
2. Measure, on --samples scopes drawn at random: `CharacterProfileManager.context` for the last segment of the
   scope (the full memory as the plot prompt sees it), then `.apply` of a realistic answer for that segment
   (matches with new looks, a new unnamed character, a lazy naming, relationships, events). Prints count,
   p50, p95, mean and max of each.

Scopes: every video is its own scope, or with --series-size N, N consecutive videos form one series scope
(episodes in order), so a scope's memory holds N times as many characters.

Run: python bench/bench_cpm.py                      # full size on PostgreSQL (a few minutes)
     python bench/bench_cpm.py --sqlite             # the same on a SQLite file
     python bench/bench_cpm.py --videos 500 --characters 5000 --samples 50
URL: V2S_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) names the server;
the benchmark creates and drops its own database there.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from annotator.schemas import PlotReasoning
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database, sqlite_url, upgrade
from profiles_db.models import (
    Character,
    CharacterAlias,
    CharacterObservation,
    Merge,
    NameEvent,
    Relationship,
    Segment,
    SegmentPlot,
    Video,
)
from profiles_db.normalize import normalize_name

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BENCH_DB = "v2s_bench_cpm"
SEGMENT_S = 60.0
CHUNK_VIDEOS = 250  # videos generated and inserted per batch (bounded memory)

FIRST = ["Anna", "Ben", "Clara", "David", "Elena", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kemal", "Lena"]
LAST = ["Crane", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Rossi", "Novak", "Haddad", "Walsh", "Ferreira"]
LOOKS = [
    "tall woman, red wool coat, short dark hair",
    "stocky man, grey beard, flat cap, tweed jacket",
    "young man, hoodie, headphones around his neck",
    "elderly woman, silver bun, cardigan, reading glasses",
    "man in a navy police uniform, moustache",
    "teenage girl, school uniform, braided hair",
]
COSTUMES = [
    "now in a black evening dress",
    "soaked by the rain",
    "in hospital scrubs",
    "wearing a bloodied shirt",
]
VOICES = ["low and calm", "fast, nervous", "hoarse", "soft Irish accent", "booming"]
PERSONAS = ["guarded, dry humour", "impulsive and warm", "cold, calculating", "kind but anxious"]
ROLES = ["protagonist", "antagonist", "supporting", "minor"]
LABELS = ["siblings", "married", "colleagues", "rivals", "friends", "mother and son", "boss and employee"]


# -- the fill -----------------------------------------------------------------------------------------------
class Filler:
    """Generates one chunk of videos at a time with explicit ids, and inserts it table by table."""

    def __init__(self, args: argparse.Namespace, rng: random.Random) -> None:
        self.args, self.rng = args, rng
        self.ids = {"segments": 0, "characters": 0, "character_aliases": 0, "character_observations": 0}
        self.ids |= {"relationships": 0, "name_events": 0, "merges": 0}
        self.scope_codes: dict[str, dict[str, int]] = {}  # next code numbers per scope (series span chunks)
        # normalised names/aliases taken per scope: a CPM never leaves two canonical characters sharing one
        # (it would have merged them), so the fill must not either, or the first apply would merge dozens
        self.scope_names: dict[str, set[str]] = {}
        self.t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def next_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def per_video(self, v: int) -> int:
        base, extra = divmod(self.args.characters, self.args.videos)
        return base + (1 if v < extra else 0)

    def chunk(self, videos: range) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("videos", *self.ids, "segment_plots")}
        nseg = self.args.segments
        for v in videos:
            series = v // self.args.series_size
            scope = f"bench-series-{series:05d}" if self.args.series_size > 1 else f"bench-video-{v:05d}"
            episode = v % self.args.series_size + 1 if self.args.series_size > 1 else None
            vid = f"bench-{v:06d}"
            created = self.t0 + timedelta(seconds=v)
            rows["videos"].append(
                {
                    "id": vid,
                    "uri": f"s3://films/{vid}.mp4",
                    "scope": scope,
                    "episode": episode,
                    "duration_s": nseg * SEGMENT_S,
                    "fps": 24.0,
                    "width": 1920,
                    "height": 1080,
                    "has_audio": True,
                    "status": "done",
                    "created_at": created,
                }
            )
            # the last segment stays without memory: the measured context/apply is for it
            segs = [self.next_id("segments") for _ in range(nseg)]
            for i, sid in enumerate(segs, start=1):
                rows["segments"].append(
                    {
                        "id": sid,
                        "video_id": vid,
                        "idx": i,
                        "start_s": (i - 1) * SEGMENT_S,
                        "end_s": i * SEGMENT_S,
                        "proxy_uri": None,
                        "status": "done" if i < nseg else "pending",
                    }
                )
            known = segs[:-1]
            codes = self.scope_codes.setdefault(scope, {"char": 0, "unknown": 0})
            chars = self._characters(rows, scope, self.per_video(v), known, codes, created)
            self._relationships(rows, scope, chars, known)
            for sid in known:
                rows["segment_plots"].append(
                    {
                        "segment_id": sid,
                        "scope": scope,
                        "summary": self._narrative(chars)[:400],
                        "narrative": self._narrative(chars),
                        "continuity_note": "continues directly from the previous scene",
                        "main_events": [
                            {"timestamp": 5.0 * k, "description": "they argue", "involved_characters": []}
                            for k in range(3)
                        ],
                        "code_map": {c["code"]: c["code"] for c in chars[:4]},
                        "created_at": created,
                    }
                )
        return rows

    def _characters(
        self,
        rows: dict[str, list[dict[str, Any]]],
        scope: str,
        n: int,
        known: list[int],
        codes: dict[str, int],
        created: datetime,
    ) -> list[dict[str, Any]]:
        rng = self.rng
        chars: list[dict[str, Any]] = []
        for j in range(n):
            merged = j == n - 1 and n >= 4  # the last record of a video is a duplicate, merged into the first
            named = merged or rng.random() < 0.7
            renamed = named and not merged and j == 1  # one character per video was named lazily
            prefix = "char" if named and not merged else "unknown"
            codes[prefix] += 1
            code = f"{prefix}_{codes[prefix]:03d}"
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {codes['char']}" if named else None
            seen = sorted(rng.sample(known, max(1, len(known) // 2)))
            cid = self.next_id("characters")
            look = rng.choice(LOOKS)
            c = {
                "id": cid,
                "scope": scope,
                "code": code,
                "name": name,
                "status": "named" if named else "provisional",
                "first_seen_segment_id": seen[0],
                "last_seen_segment_id": seen[-1],
                "role_type": rng.choice(ROLES),
                "appearance": look,
                "voice": rng.choice(VOICES),
                "personality": rng.choice(PERSONAS),
                "merged_into": chars[0]["id"] if merged and chars else None,
                "created_at": created,
            }
            if merged:
                c["name"] = chars[0]["name"] or name
            rows["characters"].append(c)
            chars.append(c)
            if c["name"] and not merged:
                for alias in (c["name"], c["name"].split()[0], f"the {c['role_type']}"):
                    self._alias(rows, scope, cid, alias, seen[0])
            if renamed:
                codes["unknown"] += 1
                rows["name_events"].append(
                    {
                        "id": self.next_id("name_events"),
                        "character_id": cid,
                        "segment_id": seen[-1],
                        "old_code": f"unknown_{codes['unknown']:03d}",
                        "new_code": code,
                        "old_name": None,
                        "new_name": name,
                        "evidence": "she calls him by his name",
                        "created_at": created,
                    }
                )
            for k, sid in enumerate(seen):
                owner = chars[0]["id"] if merged and chars else cid
                note = look if k < len(seen) // 2 else f"{look}, {rng.choice(COSTUMES)}"
                rows["character_observations"].append(
                    {
                        "id": self.next_id("character_observations"),
                        "character_id": owner,
                        "segment_id": sid,
                        "source_code": code,
                        "appearance": note,
                        "voice": c["voice"],
                        "personality": c["personality"] if k == 0 else None,
                        "clothing": None,
                        "timestamps": [{"t": 3.0, "abs": 3.0, "action": "enters"}],
                        "created_at": created,
                    }
                )
            if merged and chars[0] is not c:
                rows["merges"].append(
                    {
                        "id": self.next_id("merges"),
                        "from_id": cid,
                        "into_id": chars[0]["id"],
                        "segment_id": seen[-1],
                        "reason": "same name or alias",
                        "moved": {"aliases": [], "aliases_dropped": [], "observations": []},
                        "created_at": created,
                    }
                )
        return [c for c in chars if c["merged_into"] is None]

    def _alias(
        self, rows: dict[str, list[dict[str, Any]]], scope: str, cid: int, alias: str, sid: int
    ) -> None:
        taken = self.scope_names.setdefault(scope, set())
        if normalize_name(alias) in taken:
            return
        taken.add(normalize_name(alias))
        rows["character_aliases"].append(
            {
                "id": self.next_id("character_aliases"),
                "character_id": cid,
                "alias": alias,
                "normalized": normalize_name(alias),
                "segment_id": sid,
            }
        )

    def _relationships(
        self, rows: dict[str, list[dict[str, Any]]], scope: str, chars: list[dict[str, Any]], known: list[int]
    ) -> None:
        pairs = [(a, b) for i, a in enumerate(chars) for b in chars[i + 1 :]]
        for a, b in self.rng.sample(pairs, min(len(pairs), int(1.5 * len(chars)))):
            first, last = sorted(self.rng.sample(known, 2)) if len(known) > 1 else (known[0], known[0])
            rows["relationships"].append(
                {
                    "id": self.next_id("relationships"),
                    "scope": scope,
                    "a_id": a["id"],
                    "b_id": b["id"],
                    "label": self.rng.choice(LABELS),
                    "evidence": "they are seen together at the funeral",
                    "first_segment_id": first,
                    "last_segment_id": last,
                }
            )

    def _narrative(self, chars: list[dict[str, Any]]) -> str:
        who = [c["code"] for c in chars[:3]]
        return (
            f"{' and '.join(who)} meet at the harbour at dawn. An argument about the missing money turns "
            "into a confession; the rain keeps falling while the ferry leaves without them. "
        ) * 3


def fill(db: Database, args: argparse.Namespace) -> dict[str, int]:
    rng = random.Random(args.seed)
    filler = Filler(args, rng)
    order = [
        ("videos", Video),
        ("segments", Segment),
        ("characters", Character),
        ("character_aliases", CharacterAlias),
        ("character_observations", CharacterObservation),
        ("relationships", Relationship),
        ("name_events", NameEvent),
        ("merges", Merge),
        ("segment_plots", SegmentPlot),
    ]
    counts = dict.fromkeys((t for t, _ in order), 0)
    started = time.perf_counter()
    for first in range(0, args.videos, CHUNK_VIDEOS):
        videos = range(first, min(args.videos, first + CHUNK_VIDEOS))
        rows = filler.chunk(videos)
        with db.engine.begin() as conn:
            for table, model in order:
                if rows[table]:
                    conn.execute(insert(model.__table__), rows[table])
                    counts[table] += len(rows[table])
        done = videos.stop
        if done % (CHUNK_VIDEOS * 8) == 0 or done == args.videos:
            print(f"  filled {done}/{args.videos} videos ({time.perf_counter() - started:.0f} s)", flush=True)
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            for table, _ in order:
                if table in ("videos", "segment_plots"):
                    continue
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))
    return counts


# -- the measurement -----------------------------------------------------------------------------------------
def answer_for(profiles: list[Any], index: int, rng: random.Random) -> PlotReasoning:
    """What a plot model returns for the next segment: known faces, a newcomer, a name learned, relations."""
    known = profiles[: min(5, len(profiles))]
    unnamed = [p for p in profiles if p.status != "named"]
    characters = [
        {
            "id": p.id,
            "name": p.name or "Unnamed",
            "matched_from": p.id,
            "match_confidence": "high",
            "match_reason": "same face and voice",
            "new_info": {"appearance": f"{p.appearance}, {rng.choice(COSTUMES)}", "aliases": []},
            "appearances_in_segment": [{"timestamp": 4.0 * k, "action": "talks"} for k in range(3)],
        }
        for p in known
    ]
    characters.append(
        {
            "id": "unknown_900",
            "name": "Unnamed",
            "appearance": "a courier in a yellow jacket",
            "role_type": "minor",
        }
    )
    name_updates = (
        [{"unknown_id": unnamed[0].id, "name": f"Zed Quill {index}", "evidence": "his badge reads Zed Quill"}]
        if unnamed
        else []
    )
    rels = [
        {"char1_id": a.id, "char2_id": b.id, "relationship": rng.choice(LABELS), "evidence": "seen arguing"}
        for a, b in itertools.pairwise(known)
    ][:3]
    return PlotReasoning.model_validate(
        {
            "segment_info": {"segment_index": index, "continuity_note": "same night"},
            "characters": characters,
            "name_updates": name_updates,
            "relationships": rels,
            "plot_summary": {
                "narrative": "The courier delivers the envelope; the family reads it in silence. " * 6,
                "main_events": [
                    {"timestamp": 10.0 * k, "description": "a reveal", "involved_characters": [known[0].id]}
                    for k in range(4)
                ]
                if known
                else [],
            },
        }
    )


def measure(db: Database, args: argparse.Namespace) -> tuple[list[float], list[float], list[int]]:
    rng = random.Random(args.seed + 1)
    cpm = CharacterProfileManager(db)
    with db.sessions() as s:
        scopes = list(s.scalars(select(Video.scope).distinct().order_by(Video.scope)))
    sample = rng.sample(scopes, min(args.samples + args.warmup, len(scopes)))
    context_ms: list[float] = []
    apply_ms: list[float] = []
    sizes: list[int] = []
    tally = {"merges": 0, "warnings": 0}
    for n, scope in enumerate(sample):
        with db.sessions() as s:  # the scope's last segment: the one with no memory yet
            seg = s.execute(
                select(Segment.id, Segment.idx)
                .join(Video, Video.id == Segment.video_id)
                .where(Video.scope == scope)
                .order_by(Video.episode.desc().nulls_last(), Segment.idx.desc())
                .limit(1)
            ).one()
        t = time.perf_counter()
        ctx = cpm.context(scope, seg.id, token_budget=args.token_budget)
        t_ctx = time.perf_counter() - t
        answer = answer_for(ctx.characters, seg.idx, rng)
        t = time.perf_counter()
        report = cpm.apply(scope, seg.id, answer)
        t_apply = time.perf_counter() - t
        tally["merges"] += len(report.merged)
        tally["warnings"] += len(report.warnings)
        if n >= args.warmup:
            context_ms.append(t_ctx * 1000)
            apply_ms.append(t_apply * 1000)
            sizes.append(len(ctx.characters) + ctx.omitted_characters)
    print(
        f"applies  {len(sample)}: {tally['merges']} merges, {tally['warnings']} warnings (a sane fill has none)"
    )
    return context_ms, apply_ms, sizes


def describe(label: str, values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return (
        f"{label:<8} n={len(values):<5} p50={q[49]:8.1f} ms  p95={q[94]:8.1f} ms  "
        f"mean={statistics.fmean(values):8.1f} ms  max={max(values):8.1f} ms"
    )


# -- databases -----------------------------------------------------------------------------------------------
@contextmanager
def bench_database(args: argparse.Namespace) -> Iterator[Database]:
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="v2s-bench-cpm-") as tmp:
            url = sqlite_url(Path(tmp) / "bench.sqlite")
            upgrade(url)
            db = Database(url, auto_upgrade=False)
            try:
                yield db
            finally:
                db.dispose()
        return
    server = os.environ.get("V2S_BENCH_POSTGRES_URL", DEFAULT_SERVER)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{BENCH_DB}"'))
    url = make_url(server).set(database=BENCH_DB).render_as_string(hide_password=False)
    db = None
    try:
        upgrade(url)
        db = Database(url, auto_upgrade=False)
        yield db
    finally:
        if db is not None:
            db.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--characters", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=12, help="segments per video")
    parser.add_argument(
        "--series-size", type=int, default=1, help="videos per series scope (1: a scope per video)"
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--token-budget", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite", action="store_true", help="run on a temporary SQLite file instead")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database afterwards")
    args = parser.parse_args()
    if args.videos < 1 or args.characters < args.videos or args.segments < 3:
        parser.error("need at least one character per video and three segments per video")

    with bench_database(args) as db:
        backend = db.engine.dialect.name
        print(
            f"CPM benchmark on {backend}: {args.videos} videos, {args.characters} characters, "
            f"{args.segments} segments/video, series of {args.series_size}"
        )
        started = time.perf_counter()
        counts = fill(db, args)
        fill_s = time.perf_counter() - started
        print(
            f"fill     {fill_s:.1f} s, {sum(counts.values())} rows: "
            + ", ".join(f"{t}={n}" for t, n in counts.items())
        )
        with db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Character)) == args.characters
        context_ms, apply_ms, sizes = measure(db, args)
        print(
            f"scopes   n={len(sizes)} characters in a scope's memory: median {statistics.median(sizes):.0f}"
        )
        print(describe("context", context_ms))
        print(describe("apply", apply_ms))


if __name__ == "__main__":
    main()
