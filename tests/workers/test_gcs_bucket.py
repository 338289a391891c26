"""gs:// sources and outputs on a real GCS JSON-API server (gcp-storage-emulator on a free loopback port): listing
prefixes, globs and manifests through gcsfs with stable ids, fetching objects, and a whole job that reads the
sample film and a broken object from the bucket and writes shards, manifest and proxies back to it, exactly once.

The engine reaches the emulator the way a user's job would, through `V2S_GCS_ENDPOINT_URL` and `V2S_GCS_TOKEN=anon`
(Ray workers inherit them). Setup and checks use other clients: google-cloud-storage for uploads and listings, and
plain fsspec (tests/e2e_checks) configured for the emulator in this process only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import gcsfs.core
import pytest
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from typer.testing import CliRunner

from jobs.cli import app
from jobs.runner import JobSpec, run_job
from jobs.sources import SourceError, list_sources
from tests.support import e2e as checks
from workers.context import VideoSource
from workers.fetch import FetchError, local_copy, release_copy
from workers.storage import StorageError, filesystem, storage_options

pytestmark = pytest.mark.own_ray  # starts a Ray of its own, or its workers need environment of their own

HOSTILE = "Film — été 雨 (1).mp4"
SOURCE, OUT = "gs://films/season-1", "gs://films/v2s-out/run 1"
BROKEN = "gs://films/season-1/broken.mp4"


def _quiet_hangups(httpd) -> None:
    """gcsfs starts two requests for one lookup and drops the loser; the emulator's HTTPServer prints a traceback
    for every such hang-up. Those are expected; any other error is still printed."""
    default = httpd.handle_error

    def handle_error(request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            default(request, client_address)

    httpd.handle_error = handle_error


@contextmanager
def gcs_emulator(cache_dir: Path) -> Iterator[str]:
    """A GCS JSON-API server on a free loopback port; yields its endpoint URL."""
    port = checks.free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    _quiet_hangups(server._api._httpd)
    endpoint = f"http://127.0.0.1:{port}"
    saved_env = dict(os.environ)
    saved_conf = {p: fsspec.config.conf.get(p) for p in ("gs", "gcs")}
    saved_class = fsspec.get_filesystem_class("gs")
    os.environ.update(
        {"V2S_GCS_ENDPOINT_URL": endpoint, "V2S_GCS_TOKEN": "anon", "V2S_CACHE_DIR": str(cache_dir)}
    )
    # The shared output readers in e2e_checks use plain fsspec with no options for gs://; point them at the
    # emulator here (this process only: the job's Ray workers see the V2S_ settings alone). Without a token
    # gcsfs would look for Google credentials, and its default class for gs:// would ask Google's gRPC control
    # plane about every bucket.
    fsspec.config.conf["gs"] = {"endpoint_url": endpoint, "token": "anon"}
    fsspec.register_implementation("gs", gcsfs.core.GCSFileSystem, clobber=True)
    try:
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for proto, conf in saved_conf.items():
            fsspec.config.conf.pop(proto, None)
            if conf is not None:
                fsspec.config.conf[proto] = conf
        fsspec.register_implementation("gs", saved_class, clobber=True)
        server.stop()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with gcs_emulator(tmp_path_factory.mktemp("cache")) as url:
        yield url


@pytest.fixture(scope="module")
def client(endpoint) -> storage.Client:
    return storage.Client(
        project="v2s-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


def _keys(client: storage.Client, bucket: str, prefix: str) -> set[str]:
    return {blob.name for blob in client.list_blobs(bucket, prefix=prefix)}


# -- settings ----------------------------------------------------------------------------------------


def test_gcs_settings_become_gcsfs_options(monkeypatch, tmp_path):
    monkeypatch.setenv("V2S_GCS_ENDPOINT_URL", "http://127.0.0.1:4443/")
    monkeypatch.setenv("V2S_GCS_TOKEN", "anon")
    assert storage_options("gs") == {
        "endpoint_url": "http://127.0.0.1:4443",
        "token": "anon",
        "use_listings_cache": False,
    }
    key = tmp_path / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("V2S_GCS_TOKEN", str(key))
    assert storage_options("gcs")["token"] == str(key)
    assert "endpoint_url" not in storage_options("s3")


@pytest.mark.parametrize("bad", ["127.0.0.1:4443", "http://127.0.0.1:4443/storage/v1", "ftp://host"])
def test_a_bad_gcs_endpoint_is_named(monkeypatch, bad):
    monkeypatch.setenv("V2S_GCS_ENDPOINT_URL", bad)
    with pytest.raises(StorageError, match=r"gs://b/k: V2S_GCS_ENDPOINT_URL='.*' is not an endpoint"):
        filesystem("gs://b/k")
    with pytest.raises(SourceError, match="V2S_GCS_ENDPOINT_URL"):
        list_sources("gs://b/k")


def test_a_raw_gcs_token_is_refused_without_echoing_it(monkeypatch):
    secret = "ya29.a-raw-access-token"
    monkeypatch.setenv("V2S_GCS_TOKEN", secret)
    with pytest.raises(StorageError, match="V2S_GCS_TOKEN must be one of anon") as caught:
        filesystem("gs://b/k")
    assert secret not in str(caught.value)


# -- listing and fetching --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing(client):
    bucket = client.create_bucket("listing")
    for key, body in {
        "s1/ep1.mp4": b"one",
        "s1/ep2.mp4": b"two",
        "s1/extras/making-of.mkv": b"three",
        "s1/readme.txt": b"text",
        "s1/": b"",  # a folder marker, as the console creates
        f"s1/{HOSTILE}": b"hostile",
        "other/ep9.mp4": b"nine",
    }.items():
        bucket.blob(key).upload_from_string(body)
    return bucket


def test_gs_prefix_lists_video_objects_with_stable_ids(listing):
    found = list_sources("gs://listing/s1")
    assert [v.uri for v in found] == [
        f"gs://listing/s1/{HOSTILE}",
        "gs://listing/s1/ep1.mp4",
        "gs://listing/s1/ep2.mp4",
        "gs://listing/s1/extras/making-of.mkv",
    ]
    assert len({v.video_id for v in found}) == len(found)
    assert [v.video_id for v in list_sources("gs://listing/s1/")] == [v.video_id for v in found]


def test_gs_glob_and_single_object(listing):
    assert [v.uri for v in list_sources("gs://listing/s1/ep*.mp4")] == [
        "gs://listing/s1/ep1.mp4",
        "gs://listing/s1/ep2.mp4",
    ]
    globbed = {v.uri: v.video_id for v in list_sources("gs://listing/**/*.mp4")}
    assert "gs://listing/other/ep9.mp4" in globbed and f"gs://listing/s1/{HOSTILE}" in globbed
    single = list_sources("gs://listing/other/ep9.mp4")
    assert [v.uri for v in single] == ["gs://listing/other/ep9.mp4"]
    assert single[0].video_id == globbed["gs://listing/other/ep9.mp4"]  # however it was listed


def test_gs_video_id_changes_when_the_object_does(listing):
    before = list_sources("gs://listing/other/ep9.mp4")[0].video_id
    assert list_sources("gs://listing/other/ep9.mp4")[0].video_id == before
    listing.blob("other/ep9.mp4").upload_from_string(b"nine, re-encoded")
    after = list_sources("gs://listing/other/ep9.mp4")[0].video_id
    assert after != before
    assert list_sources("gs://listing/other/ep9.mp4")[0].video_id == after


def test_gs_missing_bucket_or_empty_prefix_is_a_clear_error(listing):
    with pytest.raises(SourceError, match=r"gs://no-such-bucket/films"):
        list_sources("gs://no-such-bucket/films")
    with pytest.raises(SourceError, match="has no video objects"):
        list_sources("gs://listing/nothing-here")


def test_gs_manifest_resolves_relative_keys(listing):
    rows = [{"uri": "ep1.mp4", "series": "S1", "episode": 1}, {"uri": "gs://listing/s1/ep2.mp4"}]
    listing.blob("s1/list.jsonl").upload_from_string("\n".join(json.dumps(r) for r in rows))
    found = list_sources("gs://listing/s1/list.jsonl")
    assert [(v.uri, v.scope, v.episode) for v in found] == [
        ("gs://listing/s1/ep1.mp4", "S1", 1),
        ("gs://listing/s1/ep2.mp4", None, None),
    ]
    listing.blob("s1/missing.csv").upload_from_string("uri\nep7.mp4\n")
    with pytest.raises(SourceError, match=r"row 1: gs://listing/s1/ep7.mp4 does not exist"):
        list_sources("gs://listing/s1/missing.csv")


def test_gs_fetch_downloads_into_the_cache_and_removes_it(listing):
    video = next(v for v in list_sources("gs://listing/s1") if v.uri.endswith(HOSTILE))
    path = local_copy(video)
    assert path.read_bytes() == b"hostile"
    assert path.is_relative_to(Path(os.environ["V2S_CACHE_DIR"]))
    assert HOSTILE not in str(path)  # named by video id, never by the key
    release_copy(video, path)
    assert not path.exists()
    gone = VideoSource(uri="gs://listing/s1/gone.mp4", local_path="gs://listing/s1/gone.mp4", video_id="gone")
    with pytest.raises(FetchError, match=r"gs://listing/s1/gone.mp4: object does not exist"):
        local_copy(gone)


def test_a_fresh_process_reaches_the_emulator_with_the_v2s_settings_alone(listing):
    """What a Ray worker has: the environment, none of this process's fsspec configuration."""
    code = "from jobs.sources import list_sources; print([v.uri for v in list_sources('gs://listing/s1/ep*.mp4')])"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FSSPEC_", "STORAGE_EMULATOR"))}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=50, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(["gs://listing/s1/ep1.mp4", "gs://listing/s1/ep2.mp4"])


# -- a whole job -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory):
    with checks.simulator_environment(tmp_path_factory.mktemp("film")) as env:
        yield env


@pytest.fixture(scope="module")
def films(client, simulator_env):
    bucket = client.create_bucket("films")
    bucket.blob("season-1/the sample film.mp4").upload_from_filename(str(simulator_env[0]))
    bucket.blob("season-1/broken.mp4").upload_from_string(os.urandom(4096))
    return bucket


def _spec() -> JobSpec:
    return JobSpec(source=SOURCE, out=OUT, max_segment_s=60, num_cpus=2)


@pytest.fixture(scope="module")
def bucket_run(films, simulator_env):
    return run_job(_spec())


@pytest.mark.slow
def test_the_film_is_annotated_and_the_broken_object_fails_alone(bucket_run):
    _, summary = bucket_run
    assert list(summary.failed_videos) == [BROKEN]
    assert "not a readable video" in summary.failed_videos[BROKEN]
    summary.failed_videos.clear()  # the rest of the summary must be as clean as a local run's
    checks.check_every_segment_is_one_valid_record(OUT, summary)
    for record in checks.records(OUT):
        assert record["video"]["uri"] == "gs://films/season-1/the sample film.mp4"


@pytest.mark.slow
def test_shards_manifest_and_proxies_are_in_the_bucket(bucket_run, client):
    checks.check_manifest_matches_the_files(OUT)
    keys = _keys(client, "films", "v2s-out/")
    assert "v2s-out/run 1/manifest.json" in keys
    assert [k for k in keys if k.startswith("v2s-out/run 1/shards/part-")]
    assert not [k for k in keys if k.endswith(".tmp")]
    for record in checks.records(OUT):
        proxy = record["video"]["proxy_uri"]
        assert proxy.startswith("proxies/")  # relative to the output (records 3.0.0)
        assert f"{OUT}/{proxy}".removeprefix("gs://films/") in keys


@pytest.mark.slow
def test_the_local_database_says_why_the_broken_object_failed(bucket_run):
    rows = checks.failed_inputs_of_bucket_job(OUT)
    assert list(rows) == [BROKEN]
    assert "not a readable video" in rows[BROKEN]
    result = CliRunner().invoke(app, ["status", "--out", OUT])
    assert result.exit_code == 0, result.output
    assert f"{BROKEN}: " in " ".join(result.output.split())


@pytest.mark.slow
def test_downloaded_sources_are_removed_from_the_cache(bucket_run):
    fetched = Path(os.environ["V2S_CACHE_DIR"]) / "fetch"
    assert not fetched.exists() or not any(fetched.iterdir())


@pytest.mark.slow
def test_a_rerun_writes_nothing_new(bucket_run, simulator_env, client):
    objects_before = {b.name: b.md5_hash for b in client.list_blobs("films", prefix="v2s-out/")}
    checks.check_rerun_writes_nothing_twice(OUT, simulator_env[2], lambda: run_job(_spec())[1])
    checks.check_manifest_matches_the_files(OUT)
    assert {b.name: b.md5_hash for b in client.list_blobs("films", prefix="v2s-out/")} == objects_before
