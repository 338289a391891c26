"""The whole engine once, for real: ffmpeg-rendered film → PySceneDetect → Ray → real SDKs over HTTP to the
simulator → CPM on SQLite → shards. The module runs one job and checks everything DESIGN.md §7 promises."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from annotator.schemas import Record, json_schema
from annotator.simulator.film import render_film, render_sample, render_silent_film
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.runner import JobSpec, run_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    film, screenplay_path = render_sample(tmp_path_factory.mktemp("film"))
    screenplay = Screenplay.load(screenplay_path)
    saved = dict(os.environ)
    with SimulatorServer(screenplay) as server:
        os.environ.update(
            {
                "V2S_GEMINI_BASE_URL": server.base_url,
                "V2S_GEMINI_API_KEY": "sim-test-key-e2e",
                "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
                "V2S_OPENAI_API_KEY": "sim-test-key-e2e",
            }
        )
        try:
            yield film, screenplay, server
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="module")
def first_run(simulator_env, tmp_path_factory):
    film, screenplay, _ = simulator_env
    out = tmp_path_factory.mktemp("run")
    job_id, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2))
    return out, job_id, summary, screenplay


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted((out / "shards").glob("part-*.jsonl")) for line in p.open()]


def test_every_segment_becomes_one_valid_record(first_run):
    out, _, summary, _ = first_run
    assert summary.failed_videos == {} and summary.stage_failures == []
    records = _records(out)
    assert summary.segments == 4 and len(records) == 4
    schema = json_schema("record")
    for record in records:
        Record.model_validate(record)
        jsonschema.validate(record, schema)
        assert record["messages"][1]["content"].startswith("<think>")
    starts = [r["video"]["start_s"] for r in records]
    assert starts == sorted(starts) and starts[0] == 0
    for record in records:  # absolute timestamps inside the segment's own range
        for scene in record["script"]["script"]:
            for event in scene["events"]:
                assert record["video"]["start_s"] - 1 <= event["timestamp"] <= record["video"]["end_s"] + 1


def test_manifest_matches_the_files(first_run):
    out = first_run[0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["records"] == 4
    for shard in manifest["shards"]:
        data = (out / "shards" / shard["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert data.count(b"\n") == shard["records"]
    assert not list((out / "shards").glob("*.tmp"))


def test_late_named_character_carries_his_name_in_every_segment(first_run):
    out, _, _, screenplay = first_run
    late = next(c for c in screenplay.cast if c.named_at is not None)
    records = _records(out)
    appearances = 0
    for record in records:
        names = {e["character"] for s in record["script"]["script"] for e in s["events"]}
        gt_in_range = {
            e.character
            for e in screenplay.script.events()
            if record["video"]["start_s"] <= e.timestamp < record["video"]["end_s"]
        }
        if late.name in gt_in_range:
            appearances += 1
            assert late.name in names, f"segment {record['video']['segment_index']} lost the late name"
        assert not any(n.startswith("unknown_") for n in names)
    assert appearances >= 2
    first = next(r for r in records if late.name in {c["name"] for c in r["characters"]})
    assert first["video"]["start_s"] < late.named_at  # the name reached a segment before the one that said it


def test_costume_change_character_is_one_character(first_run):
    out, _, _, screenplay = first_run
    changer = next(c for c in screenplay.cast if c.costumes)
    ids = {
        e["character_id"]
        for r in _records(out)
        for s in r["script"]["script"]
        for e in s["events"]
        if e["character"] == changer.name
    }
    assert len(ids) == 1


def test_second_run_on_the_same_output_writes_nothing_twice(first_run, simulator_env):
    out, _, _, _ = first_run
    film = simulator_env[0]
    before = {p.name: p.read_bytes() for p in (out / "shards").glob("*.jsonl")}
    calls_before = simulator_env[2].request_count() if hasattr(simulator_env[2], "request_count") else None
    _, summary = run_job(JobSpec(source=str(film), out=out, max_segment_s=60, num_cpus=2))
    after = {p.name: p.read_bytes() for p in (out / "shards").glob("*.jsonl")}
    assert after == before
    assert summary.records_written == 0
    ids = [r["id"] for r in _records(out)]
    assert len(ids) == len(set(ids)) == 4
    if calls_before is not None:
        assert simulator_env[2].request_count() == calls_before


def test_broken_inputs_fail_alone_with_clear_reasons(simulator_env, tmp_path):
    film = simulator_env[0]
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    screenplay = simulator_env[1]
    render_film(screenplay, bucket / "good.mp4", until_s=56)
    (bucket / "zero.mp4").write_bytes(b"")
    (bucket / "notes.mp4").write_text("these are meeting notes, not a film\n" * 50)
    render_silent_film(bucket / "silent.mp4", seconds=20)
    del film
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(bucket), "--out", str(out), "--max-segment-s", "60", "--num-cpus", "2"]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "zero.mp4: file is empty" in text
    assert "notes.mp4: not a readable video" in text
    annotated = {Path(r["video"]["uri"]).name for r in _records(out)}
    assert annotated == {"good.mp4", "silent.mp4"}
    shutil.rmtree(out)


def test_profiles_commands_read_and_correct_the_memory(first_run, tmp_path):
    out = first_run[0]
    db = str(out / "v2s.sqlite")
    runner = CliRunner()
    listed = runner.invoke(app, ["profiles", "list", "--db", db, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    elias = next(r for r in rows if r["name"] == "Elias Crane")
    assert "unknown_" in elias["former_codes"]
    assert len(rows) == 4
    shown = runner.invoke(
        app, ["profiles", "show", elias["former_codes"].split(",")[0].strip(), "--db", db, "--format", "json"]
    )
    assert json.loads(shown.stdout)["id"] == elias["code"]  # an old code resolves to the canonical record
    picture = tmp_path / "graph.png"
    assert runner.invoke(app, ["profiles", "graph", "--db", db, "--out", str(picture)]).exit_code == 0
    assert picture.stat().st_size > 1000 and "--" in picture.with_suffix(".dot").read_text()
    others = [r["code"] for r in rows if r["code"] != elias["code"]]
    merged = runner.invoke(app, ["profiles", "merge", others[0], others[1], "--db", db])
    assert merged.exit_code == 0, merged.output
    after = json.loads(runner.invoke(app, ["profiles", "list", "--db", db, "--format", "json"]).stdout)
    assert len(after) == 3
    assert runner.invoke(app, ["profiles", "unmerge", others[0], "--db", db]).exit_code == 0
    restored = json.loads(runner.invoke(app, ["profiles", "list", "--db", db, "--format", "json"]).stdout)
    assert sorted(r["code"] for r in restored) == sorted(r["code"] for r in rows)
    bad = runner.invoke(app, ["profiles", "merge", "char_999", others[1], "--db", db])
    assert bad.exit_code == 1
