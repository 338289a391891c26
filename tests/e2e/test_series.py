"""Series memory end to end: two episodes of one series share the CPM, a second series stays on its own.

The bucket is a manifest (uri, series, episode) of three copies of the rendered sample film: episodes 1 and 2
of the series "harbour" (listed in reverse order on purpose) and episode 1 of the series "lighthouse". The
simulator answers each proxy from the screenplay by the time range in its provenance tag, so episode 2 replays
the story with the same people; what differs is what the engine remembers when it shows it.
The whole job runs through jobs.runner.run_job: real ffmpeg, PySceneDetect, Ray (2 CPUs), the real SDKs over
HTTP to the simulator, the CPM on SQLite.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

from annotator.schemas.stage_results import PlotResult
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, run_job
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Character, CharacterAlias, Segment, StageRun, Video
from tests.support.films import sample_copy
from tests.support.media import retitled

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]

EPISODES = {
    "harbour-e2.mp4": ("harbour", 2),
    "harbour-e1.mp4": ("harbour", 1),
    "lighthouse.mp4": ("lighthouse", 1),
}


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    film, screenplay_path = sample_copy(tmp_path_factory.mktemp("film"))
    bucket = tmp_path_factory.mktemp("bucket")
    manifest = bucket / "episodes.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "series", "episode"])
        for name, (series, episode) in EPISODES.items():
            retitled(film, bucket / name, title=name)
            writer.writerow([name, series, episode])
    out = tmp_path_factory.mktemp("out")
    saved = dict(os.environ)
    with SimulatorServer(Screenplay.load(screenplay_path)) as server:
        os.environ.update(
            {
                "V2S_GEMINI_BASE_URL": server.base_url,
                "V2S_GEMINI_API_KEY": "sim-test-key-series",
                "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
                "V2S_OPENAI_API_KEY": "sim-test-key-series",
            }
        )
        os.environ.pop("V2S_DATABASE_URL", None)
        try:
            _, summary = run_job(JobSpec(source=str(manifest), out=out, max_segment_s=110, num_cpus=2))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    db = Database(sqlite_url(out / "v2s.sqlite"))
    yield out, summary, db
    db.dispose()


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]


def _episode_segments(db: Database) -> dict[str, list[int]]:
    """Segment ids of every file, in time order."""
    with db.sessions() as s:
        rows = s.execute(
            select(Video.uri, Segment.id).join(Segment, Segment.video_id == Video.id).order_by(Segment.idx)
        ).all()
    out: dict[str, list[int]] = defaultdict(list)
    for uri, sid in rows:
        out[Path(uri).name].append(sid)
    return out


def _plot_answer(db: Database, segment_id: int) -> dict:
    with db.sessions() as s:
        run = s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == "plot"))
    assert run is not None and run.status == "done", run
    return PlotResult.model_validate(run.result).answer


def test_the_job_annotates_every_episode(series_run):
    out, summary, db = series_run
    assert summary.failed_videos == {} and summary.stage_failures == []
    assert len(_records(out)) == summary.segments
    with db.sessions() as s:
        videos = {Path(v.uri).name: (v.scope, v.episode) for v in s.scalars(select(Video))}
    assert videos == EPISODES


def test_episode_two_starts_with_the_memory_of_episode_one(series_run):
    _, _, db = series_run
    segs = _episode_segments(db)
    cpm = CharacterProfileManager(db)
    # what the plot prompt of episode 2's first segment was built from: everyone episode 1 met, by name
    ctx = cpm.context("harbour", segs["harbour-e2.mp4"][0])
    assert ctx.previous_summary  # the story so far: the end of episode 1
    assert ctx.segment_index == len(segs["harbour-e1.mp4"]) + 1
    n_ep1 = len(segs["harbour-e1.mp4"])
    met_in_ep1 = {p.id for p in cpm.profiles("harbour") if p.first_seen_segment <= n_ep1}
    assert met_in_ep1 and met_in_ep1 <= {p.id for p in ctx.characters}
    assert ctx.omitted_characters == 0
    # and the model saw it: its answer for that segment matches people it was told about, none is new
    answer = _plot_answer(db, segs["harbour-e2.mp4"][0])
    matched = {c["matched_from"] for c in answer["characters"] if c.get("matched_from")}
    assert matched and matched <= {p.id for p in ctx.characters} | {
        c for p in ctx.characters for c in p.former_codes
    }
    assert "relationships" in answer and "name_updates" in answer  # the next-segment answer schema
    # the other series' first segment started cold: the first-segment prompt, no memory, no matches
    cold = _plot_answer(db, segs["lighthouse.mp4"][0])
    assert cold["characters"] and not any(c.get("matched_from") for c in cold["characters"])
    assert cpm.context("lighthouse", segs["lighthouse.mp4"][0]).characters == []


def test_a_character_keeps_one_id_across_the_episodes(series_run):
    out, _, db = series_run
    ids_by_name: dict[str, set[str]] = defaultdict(set)
    episodes_by_name: dict[str, set[str]] = defaultdict(set)
    for record in _records(out):
        file = Path(record["video"]["uri"]).name
        if not file.startswith("harbour"):
            continue
        for scene in record["script"]["script"]:
            for event in scene["events"]:
                if event.get("character_id"):
                    ids_by_name[event["character"]].add(event["character_id"])
                    episodes_by_name[event["character"]].add(file)
    both = [name for name, files in episodes_by_name.items() if len(files) == 2]
    assert len(both) >= 2, episodes_by_name
    for name in both:
        assert len(ids_by_name[name]) == 1, (name, ids_by_name[name])
    # the memory holds each of them once, seen in both episodes
    cpm = CharacterProfileManager(db)
    profiles = {p.name: p for p in cpm.profiles("harbour") if p.name}
    n_ep1 = len(_episode_segments(db)["harbour-e1.mp4"])
    for name in both:
        p = profiles[name]
        assert p.first_seen_segment <= n_ep1 < p.last_seen_segment, p
    assert len([p for p in cpm.profiles("harbour") if p.name in both]) == len(both)


def test_a_different_series_stays_independent(series_run):
    out, _, db = series_run
    cpm = CharacterProfileManager(db)
    harbour, lighthouse = cpm.profiles("harbour"), cpm.profiles("lighthouse")
    assert lighthouse
    n_light = len(_episode_segments(db)["lighthouse.mp4"])
    # its own memory: nobody in it was seen outside its one episode, its codes were issued from 001 on
    assert all(p.last_seen_segment <= n_light for p in lighthouse)
    assert max(p.appearances for p in harbour) > max(p.appearances for p in lighthouse)
    with db.sessions() as s:
        scope_of = {cid: scope for cid, scope in s.execute(select(Character.id, Character.scope))}
        light_codes = set(s.scalars(select(Character.code).where(Character.scope == "lighthouse")))
        # no row of one series points into the other: redirects and aliases stay inside a scope
        for c in s.scalars(select(Character).where(Character.merged_into.is_not(None))):
            assert scope_of[c.merged_into] == c.scope
        alias_scopes = {scope_of[a.character_id] for a in s.scalars(select(CharacterAlias))}
    assert alias_scopes == {"harbour", "lighthouse"}
    assert {"char_001"} <= light_codes or {"unknown_001"} <= light_codes
    # its records name their people with its own codes (the same film, so the same names)
    light_ids = {
        e["character_id"]
        for r in _records(out)
        if Path(r["video"]["uri"]).name == "lighthouse.mp4"
        for scene in r["script"]["script"]
        for e in scene["events"]
        if e.get("character_id")
    }
    assert light_ids and light_ids <= light_codes | {
        code for p in lighthouse for code in (p.id, *p.former_codes)
    }
