"""A job over an s3:// bucket on a real S3-compatible server (moto): the sample film and a broken object are read
from the bucket through s3fs, and shards, manifest and proxies are written back to it, exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Segment, Video
from tests.support import e2e as checks
from workers.shards import ShardWriter

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

SOURCE, OUT = "s3://films/season-1", "s3://films/v2s-out/run 1"


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module")
def s3(simulator_env, tmp_path_factory):
    film = simulator_env[0]
    with checks.moto_s3(tmp_path_factory.mktemp("cache")) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="films")
        client.upload_file(str(film), "films", "season-1/the sample film.mp4")
        client.put_object(Bucket="films", Key="season-1/broken.mp4", Body=os.urandom(4096))
        yield client


def _spec() -> JobSpec:
    return JobSpec(source=SOURCE, out=OUT, max_segment_s=60, num_cpus=2)


@pytest.fixture(scope="module")
def bucket_run(s3, simulator_env):
    job_id, summary = run_job(_spec())
    return job_id, summary


def test_the_film_is_annotated_and_the_broken_object_fails_alone(bucket_run):
    _, summary = bucket_run
    assert list(summary.failed_videos) == ["s3://films/season-1/broken.mp4"]
    assert "not a readable video" in summary.failed_videos["s3://films/season-1/broken.mp4"]
    summary.failed_videos.clear()  # the rest of the summary must be as clean as a local run's
    checks.check_every_segment_is_one_valid_record(OUT, summary)
    for record in checks.records(OUT):
        assert record["video"]["uri"] == "s3://films/season-1/the sample film.mp4"


def test_shards_manifest_and_proxies_are_in_the_bucket(bucket_run, s3):
    checks.check_manifest_matches_the_files(OUT)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="films", Prefix="v2s-out/")["Contents"]}
    assert "v2s-out/run 1/manifest.json" in keys
    assert not [k for k in keys if k.endswith(".tmp")]
    for record in checks.records(OUT):
        proxy = record["video"]["proxy_uri"]
        assert proxy.startswith("proxies/")  # relative to the output (records 3.0.0)
        assert f"{OUT}/{proxy}".removeprefix("s3://films/") in keys


def test_the_default_database_is_local_and_says_why_an_input_failed(bucket_run):
    rows = checks.failed_inputs_of_bucket_job(OUT)
    assert list(rows) == ["s3://films/season-1/broken.mp4"]
    assert "not a readable video" in rows["s3://films/season-1/broken.mp4"]


def test_status_finds_the_local_database_of_a_bucket_output(bucket_run):
    result = CliRunner().invoke(app, ["status", "--out", OUT])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "s3://films/season-1/broken.mp4: " in text and "not a readable video" in text


def test_downloaded_sources_are_removed_from_the_cache(bucket_run):
    fetched = Path(os.environ["V2S_CACHE_DIR"]) / "fetch"
    assert not fetched.exists() or not any(fetched.iterdir())


def test_a_rerun_writes_nothing_new(bucket_run, simulator_env):
    checks.check_rerun_writes_nothing_twice(OUT, simulator_env[2], lambda: run_job(_spec())[1])
    checks.check_manifest_matches_the_files(OUT)


# -- the shard writer's crash points on an object store (no Ray: the writer alone, on SQLite) ------------


@pytest.fixture
def shard_db(tmp_path):
    database = Database(sqlite_url(tmp_path / "v2s.sqlite"))
    with database.transaction() as s:
        s.add(Video(id="v1", uri="s3://films/a.mp4", scope="v1", status="split"))
        s.flush()
        for idx in range(1, 6):
            s.add(Segment(video_id="v1", idx=idx, start_s=idx * 10.0, end_s=idx * 10.0 + 10))
    yield database
    database.dispose()


def _record(segment_id: int) -> str:
    return json.dumps({"id": f"rec-{segment_id}"})


def _ids(out: str) -> list[str]:
    return sorted(r["id"] for r in checks.records(out))


class _Killed(BaseException):
    """The writer's process dies here."""


def _die_on(fs, method: str):
    original = getattr(fs, method)

    def dying(*args, **kwargs):
        raise _Killed(method)

    setattr(fs, method, dying)
    return lambda: setattr(fs, method, original)


def test_bucket_shards_rotate_and_are_never_duplicated(s3, shard_db):
    out = "s3://films/shards-rotate"
    writer = ShardWriter(out, shard_db, max_records=2)
    assert all(writer.write(sid, _record(sid)) for sid in range(1, 6))
    assert not writer.write(1, _record(1))
    writer.finish()
    again = ShardWriter(out, shard_db, max_records=2)
    assert not any(again.write(sid, _record(sid)) for sid in range(1, 6))
    again.finish()
    assert _ids(out) == [f"rec-{i}" for i in range(1, 6)]
    assert len(checks.shard_names(out)) == 3
    checks.check_manifest_matches_the_files(out, expected_records=5)


def test_bucket_crash_after_upload_before_commit_rewrites_the_records(s3, shard_db):
    out = "s3://films/shards-before-commit"
    writer = ShardWriter(out, shard_db)
    writer.write(1, _record(1))
    writer.write(2, _record(2))
    writer._handle.flush()
    writer.shards.stage(writer._name)  # the temp key is uploaded; the process dies before the commit
    del writer
    assert checks.temp_shards(out)
    recovered = ShardWriter(out, shard_db)
    assert not checks.temp_shards(out)
    assert recovered.write(1, _record(1)) and recovered.write(2, _record(2))
    recovered.finish()
    assert _ids(out) == ["rec-1", "rec-2"]
    checks.check_manifest_matches_the_files(out, expected_records=2)


@pytest.mark.parametrize("dies_in", ["copy", "rm_file"])
def test_bucket_crash_after_commit_is_finished_on_recovery(s3, shard_db, dies_in):
    out = f"s3://films/shards-after-commit-{dies_in}"
    writer = ShardWriter(out, shard_db)
    writer.write(3, _record(3))
    restore = _die_on(writer.shards.fs, dies_in)
    try:
        with pytest.raises(_Killed):
            writer.close_shard()  # committed; the final key is missing (copy) or the temp key is left (rm_file)
    finally:
        restore()
    assert checks.temp_shards(out)
    recovered = ShardWriter(out, shard_db)
    assert not recovered.write(3, _record(3))  # already exported: never written twice
    recovered.finish()
    assert _ids(out) == ["rec-3"]
    checks.check_manifest_matches_the_files(out, expected_records=1)
