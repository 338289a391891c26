"""What an end-to-end run must deliver (DESIGN.md §7), as checks shared by the SQLite, PostgreSQL and bucket
end-to-end tests, plus the real peers they need: the simulator with the sample film and a moto S3 server."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import jsonschema
from typer.testing import CliRunner

from annotator.schemas import Record, json_schema
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from tests.support.films import sample_copy

# -- peers -----------------------------------------------------------------------------------------


@contextmanager
def simulator_environment(folder: Path) -> Iterator[tuple[Path, Screenplay, SimulatorServer]]:
    """The sample film, and the simulator serving its screenplay, wired in through the environment (Ray workers
    started after this inherit it)."""
    film, screenplay_path = sample_copy(folder)
    screenplay = Screenplay.load(screenplay_path)
    with SimulatorServer(screenplay) as server, models_from(server, "sim-test-key-e2e"):
        yield film, screenplay, server


@contextmanager
def models_from(server: SimulatorServer, key: str, **extra: str) -> Iterator[None]:
    """Both backends pointed at the simulator through the environment (Ray workers started inside inherit
    it), with `extra` V2S_ variables; the environment is put back as it was afterwards."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "V2S_GEMINI_BASE_URL": server.base_url,
            "V2S_GEMINI_API_KEY": key,
            "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
            "V2S_OPENAI_API_KEY": key,
            **extra,
        }
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_s3(cache_dir: Path) -> Iterator[str]:
    """A real S3-compatible server (moto) on a free loopback port; yields its endpoint URL. The endpoint reaches
    s3fs the way a user's would (V2S_S3_ENDPOINT_URL), credentials through the standard AWS variables."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "moto-test",
            "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "V2S_S3_ENDPOINT_URL": endpoint,
            "V2S_CACHE_DIR": str(cache_dir),
        }
    )
    try:
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


# -- reading an output (local folder or bucket) -----------------------------------------------------


def _fs(out: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """Read outputs with plain fsspec (not the engine's own storage module), pointed at the test's S3 server."""
    if "://" not in str(out):
        return fsspec.filesystem("file"), str(out)
    options = {"use_listings_cache": False, "skip_instance_cache": True}
    if str(out).startswith("s3://"):
        options["endpoint_url"] = os.environ["V2S_S3_ENDPOINT_URL"]
    return fsspec.core.url_to_fs(str(out), **options)


def shard_names(out: str | Path) -> list[str]:
    fs, root = _fs(out)
    return sorted(p.rsplit("/", 1)[-1] for p in fs.glob(f"{root}/shards/part-*.jsonl"))


def temp_shards(out: str | Path) -> list[str]:
    fs, root = _fs(out)
    return fs.glob(f"{root}/shards/*.tmp")


def read_bytes(out: str | Path, relative: str) -> bytes:
    fs, root = _fs(out)
    return fs.cat_file(f"{root}/{relative}")


def shard_bytes(out: str | Path) -> dict[str, bytes]:
    return {name: read_bytes(out, f"shards/{name}") for name in shard_names(out)}


def records(out: str | Path) -> list[dict]:
    return [json.loads(line) for data in shard_bytes(out).values() for line in data.splitlines()]


# -- the checks ------------------------------------------------------------------------------------


def check_every_segment_is_one_valid_record(out, summary, segments: int = 4) -> None:
    assert summary.failed_videos == {} and summary.stage_failures == []
    found = records(out)
    assert summary.segments == segments and len(found) == segments
    schema, script_schema = json_schema("record"), json_schema("record-script")
    for record in found:  # the sample film's records against the schemas `v2s schema` publishes
        Record.model_validate(record)
        jsonschema.validate(record, schema)
        jsonschema.validate(record["script"], script_schema)
        assert record["messages"][1]["content"].startswith("<think>")
    starts = [r["video"]["start_s"] for r in found]
    assert starts == sorted(starts) and starts[0] == 0
    for record in found:  # absolute timestamps inside the segment's own range
        for scene in record["script"]["script"]:
            for event in scene["events"]:
                assert record["video"]["start_s"] - 1 <= event["timestamp"] <= record["video"]["end_s"] + 1


def check_manifest_matches_the_files(out, expected_records: int = 4) -> None:
    manifest = json.loads(read_bytes(out, "manifest.json"))
    assert manifest["records"] == expected_records
    assert [s["name"] for s in manifest["shards"]] == shard_names(out)
    for shard in manifest["shards"]:
        data = read_bytes(out, f"shards/{shard['name']}")
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert data.count(b"\n") == shard["records"]
    assert not temp_shards(out)


def check_late_named_character_everywhere(out, screenplay: Screenplay) -> None:
    late = next(c for c in screenplay.cast if c.named_at is not None)
    found = records(out)
    appearances = 0
    for record in found:
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
    first = next(r for r in found if late.name in {c["name"] for c in r["characters"]})
    assert first["video"]["start_s"] < late.named_at  # the name reached a segment before the one that said it


def check_costume_change_is_one_character(out, screenplay: Screenplay) -> None:
    changer = next(c for c in screenplay.cast if c.costumes)
    ids = {
        e["character_id"]
        for r in records(out)
        for s in r["script"]["script"]
        for e in s["events"]
        if e["character"] == changer.name
    }
    assert len(ids) == 1


def check_rerun_writes_nothing_twice(out, server: SimulatorServer, rerun, expected: int = 4) -> None:
    """`rerun()` runs the same job again on the same output and returns its summary."""
    before = shard_bytes(out)
    calls_before = server.request_count()
    summary = rerun()
    assert shard_bytes(out) == before
    assert summary.records_written == 0
    ids = [r["id"] for r in records(out)]
    assert len(ids) == len(set(ids)) == expected
    assert server.request_count() == calls_before  # a finished job pays for nothing again


def check_profiles_commands(db: str, picture: Path) -> None:
    """`v2s profiles …` reads and corrects the memory the run left in `db` (a URL or a v2s.sqlite path)."""
    runner = CliRunner()
    listed = runner.invoke(app, ["profiles", "list", "--database-url", db, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    elias = next(r for r in rows if r["name"] == "Elias Crane")
    assert any(code.startswith("unknown_") for code in elias["former_codes"])  # a JSON array of codes
    assert len(rows) == 4
    shown = runner.invoke(
        app, ["profiles", "show", elias["former_codes"][0], "--database-url", db, "--format", "json"]
    )
    assert json.loads(shown.stdout)["id"] == elias["code"]  # an old code resolves to the canonical record
    assert (
        runner.invoke(app, ["profiles", "graph", "--database-url", db, "--out", str(picture)]).exit_code == 0
    )
    assert picture.stat().st_size > 1000 and "--" in picture.with_suffix(".dot").read_text()
    others = [r["code"] for r in rows if r["code"] != elias["code"]]
    merged = runner.invoke(app, ["profiles", "merge", others[0], others[1], "--database-url", db])
    assert merged.exit_code == 0, merged.output
    after = json.loads(
        runner.invoke(app, ["profiles", "list", "--database-url", db, "--format", "json"]).stdout
    )
    assert len(after) == 3
    assert runner.invoke(app, ["profiles", "unmerge", others[0], "--database-url", db]).exit_code == 0
    restored = json.loads(
        runner.invoke(app, ["profiles", "list", "--database-url", db, "--format", "json"]).stdout
    )
    assert sorted(r["code"] for r in restored) == sorted(r["code"] for r in rows)
    bad = runner.invoke(app, ["profiles", "merge", "char_999", others[1], "--database-url", db])
    assert bad.exit_code == 1


def failed_inputs_of_bucket_job(out: str) -> dict[str, str]:
    """uri → reason of every failed input, read from the default database of a job whose output is a bucket
    (kept locally, under V2S_CACHE_DIR, on the machine that ran it)."""
    from sqlalchemy import select

    from profiles_db.db import Database
    from profiles_db.models import Video
    from workers.storage import local_workdir

    database = local_workdir(out) / "v2s.sqlite"
    assert database.is_file() and str(database).startswith(os.environ["V2S_CACHE_DIR"])
    db = Database(f"sqlite:///{database}")
    try:
        with db.sessions() as s:
            return dict(s.execute(select(Video.uri, Video.error).where(Video.status == "failed")).all())
    finally:
        db.dispose()
