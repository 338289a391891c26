"""Listing SOURCEs: local files, folders, globs and manifests, and the same over a real S3-compatible server
(moto) through s3fs, including hostile object names, stable ids and fetching objects into the local cache."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import boto3
import pytest

from jobs.sources import SourceError, list_sources
from tests.support import e2e as checks
from workers.context import VideoSource
from workers.fetch import FetchError, local_copy, release_copy
from workers.storage import is_remote, normalise

HOSTILE = "Film — été 雨 (1).mp4"


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- local -----------------------------------------------------------------------------------------


def test_local_folder_lists_videos_recursively_in_order(tmp_path):
    _touch(tmp_path / "b.mp4")
    _touch(tmp_path / "sub" / "a.MKV")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / HOSTILE)
    found = list_sources(str(tmp_path))
    assert [Path(v.uri).name for v in found] == [HOSTILE, "b.mp4", "a.MKV"]
    assert len({v.video_id for v in found}) == 3
    assert [v.video_id for v in list_sources(str(tmp_path))] == [v.video_id for v in found]  # stable


def test_local_glob_single_file_and_missing(tmp_path):
    _touch(tmp_path / "ep1.mp4")
    _touch(tmp_path / "ep2.mp4")
    _touch(tmp_path / "x.mov")
    assert [Path(v.uri).name for v in list_sources(str(tmp_path / "ep*.mp4"))] == ["ep1.mp4", "ep2.mp4"]
    assert list_sources(str(tmp_path / "x.mov"))[0].local_path == str((tmp_path / "x.mov").resolve())
    with pytest.raises(SourceError, match="not a video file"):
        list_sources(str(tmp_path / "nothing*.mp4"))


def test_local_manifests_csv_and_jsonl_with_series_and_episodes(tmp_path):
    _touch(tmp_path / "v" / "e1.mp4")
    _touch(tmp_path / "v" / HOSTILE)
    (tmp_path / "m.csv").write_text(f'uri,series,episode\nv/e1.mp4,Show,1\n"v/{HOSTILE}",Show,2\n')
    found = list_sources(str(tmp_path / "m.csv"))
    assert [(Path(v.uri).name, v.scope, v.episode) for v in found] == [
        ("e1.mp4", "Show", 1),
        (HOSTILE, "Show", 2),
    ]
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "v/e1.mp4"}) + "\n\n")
    assert list_sources(str(tmp_path / "m.jsonl"))[0].scope is None
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(SourceError, match=r"bad.jsonl:1: not JSON"):
        list_sources(str(tmp_path / "bad.jsonl"))
    (tmp_path / "missing.csv").write_text("uri\nv/none.mp4\n")
    with pytest.raises(SourceError, match=r"row 1: v/none.mp4 does not exist"):
        list_sources(str(tmp_path / "missing.csv"))
    (tmp_path / "ep.csv").write_text("uri,episode\nv/e1.mp4,first\n")
    with pytest.raises(SourceError, match="not a whole number"):
        list_sources(str(tmp_path / "ep.csv"))


def test_a_spreadsheets_manifest_is_read_and_an_empty_one_refused(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, and in comma-decimal locales it separates with `;`;
    column names may come capitalised (#33). A manifest listing nothing is refused, never a run of nothing."""
    _touch(tmp_path / "v" / "e1.mp4")
    _touch(tmp_path / "v" / "e2.mp4")
    (tmp_path / "excel.csv").write_bytes(
        "\ufeffURI;Series;Episode\r\nv/e1.mp4;Show;1\r\nv/e2.mp4;Show;2\r\n".encode()
    )
    found = list_sources(str(tmp_path / "excel.csv"))
    assert [(Path(v.uri).name, v.scope, v.episode) for v in found] == [
        ("e1.mp4", "Show", 1),
        ("e2.mp4", "Show", 2),
    ]
    (tmp_path / "tabs.csv").write_text("uri\tseries\nv/e1.mp4\tOther\n")
    assert [v.scope for v in list_sources(str(tmp_path / "tabs.csv"))] == ["Other"]
    for name, text in (("empty.csv", "uri\n"), ("empty.jsonl", "\n")):
        (tmp_path / name).write_text(text)
        with pytest.raises(SourceError, match=rf"{name}: the manifest lists no videos"):
            list_sources(str(tmp_path / name))


def test_a_bucket_uri_survives_a_path_option():
    assert normalise(Path("s3://bucket/prefix")) == "s3://bucket/prefix"
    assert normalise("gs://bucket/prefix/") == "gs://bucket/prefix"
    assert normalise("out/run") == Path("out/run")
    assert not is_remote(normalise("file:///tmp/x"))


def test_gs_without_gcsfs_says_what_to_install(monkeypatch):
    # the dev install has gcsfs: hide it as a machine without the `gcs` extra would lack it
    registry = importlib.import_module("fsspec.registry")  # the module (fsspec.registry is its mapping)
    for name in [m for m in sys.modules if m == "gcsfs" or m.startswith("gcsfs.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "gcsfs", None)
    for proto in ("gs", "gcs"):
        monkeypatch.delitem(registry._registry, proto, raising=False)
    monkeypatch.delenv("V2S_GCS_ENDPOINT_URL", raising=False)
    with pytest.raises(SourceError, match="pip install gcsfs"):
        list_sources("gs://films/season1")
    monkeypatch.setenv("V2S_GCS_ENDPOINT_URL", "http://127.0.0.1:9")  # the plain-class path says it too
    with pytest.raises(SourceError, match="pip install gcsfs"):
        list_sources("gs://films/season1")


# -- S3 (moto) -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with checks.moto_s3(tmp_path_factory.mktemp("cache")) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="films")
        for key, body in {
            "s1/ep1.mp4": b"one",
            "s1/ep2.mp4": b"two",
            "s1/extras/making-of.mkv": b"three",
            "s1/readme.txt": b"text",
            "s1/": b"",  # a folder marker, as some consoles create
            f"s1/{HOSTILE}": b"hostile",
            "s1/../escape.mp4": b"dots",
            "other/ep9.mp4": b"nine",
        }.items():
            client.put_object(Bucket="films", Key=key, Body=body)
        yield client


def test_s3_prefix_lists_video_objects(s3):
    found = list_sources("s3://films/s1")
    assert [v.uri for v in found] == [
        "s3://films/s1/../escape.mp4",
        f"s3://films/s1/{HOSTILE}",
        "s3://films/s1/ep1.mp4",
        "s3://films/s1/ep2.mp4",
        "s3://films/s1/extras/making-of.mkv",
    ]
    assert all(v.local_path == v.uri for v in found)
    assert [v.video_id for v in list_sources("s3://films/s1/")] == [v.video_id for v in found]


def test_s3_glob_and_single_object(s3):
    assert [v.uri for v in list_sources("s3://films/s1/ep*.mp4")] == [
        "s3://films/s1/ep1.mp4",
        "s3://films/s1/ep2.mp4",
    ]
    assert [v.uri for v in list_sources("s3://films/other/ep9.mp4")] == ["s3://films/other/ep9.mp4"]


def test_s3_video_id_changes_when_the_object_does(s3):
    before = list_sources("s3://films/other/ep9.mp4")[0].video_id
    assert list_sources("s3://films/other/ep9.mp4")[0].video_id == before
    s3.put_object(Bucket="films", Key="other/ep9.mp4", Body=b"nine, re-encoded")
    assert list_sources("s3://films/other/ep9.mp4")[0].video_id != before


def test_s3_missing_bucket_or_empty_prefix_is_a_clear_error(s3):
    with pytest.raises(SourceError, match="no-such-bucket"):
        list_sources("s3://no-such-bucket/films")
    with pytest.raises(SourceError, match="has no video objects"):
        list_sources("s3://films/nothing-here")


def test_local_manifest_of_bucket_uris(s3, tmp_path):
    manifest = tmp_path / "episodes.csv"
    manifest.write_text("uri,series,episode\ns3://films/s1/ep2.mp4,S1,2\ns3://films/s1/ep1.mp4,S1,1\n")
    found = list_sources(str(manifest))
    assert [(v.uri, v.scope, v.episode) for v in found] == [
        ("s3://films/s1/ep2.mp4", "S1", 2),
        ("s3://films/s1/ep1.mp4", "S1", 1),
    ]
    manifest.write_text("uri\ns3://films/s1/ep7.mp4\n")
    with pytest.raises(SourceError, match=r"row 1: s3://films/s1/ep7.mp4 does not exist"):
        list_sources(str(manifest))


def test_manifest_in_a_bucket_resolves_relative_keys(s3):
    lines = [{"uri": "ep1.mp4", "series": "S1", "episode": 1}, {"uri": "s3://films/other/ep9.mp4"}]
    s3.put_object(Bucket="films", Key="lists/s1.jsonl", Body="\n".join(json.dumps(r) for r in lines).encode())
    s3.put_object(Bucket="films", Key="lists/ep1.mp4", Body=b"copy")
    found = list_sources("s3://films/lists/s1.jsonl")
    assert [(v.uri, v.episode) for v in found] == [
        ("s3://films/lists/ep1.mp4", 1),
        ("s3://films/other/ep9.mp4", None),
    ]
    s3.put_object(Bucket="films", Key="lists/local.csv", Body=b"uri\n/etc/passwd\n")
    with pytest.raises(SourceError, match="local path in a manifest that lives in a bucket"):
        list_sources("s3://films/lists/local.csv")


def test_fetch_downloads_into_the_cache_and_removes_it(s3, tmp_path):
    video = next(v for v in list_sources("s3://films/s1") if v.uri.endswith(HOSTILE))
    path = local_copy(video)
    cache = Path(__import__("os").environ["V2S_CACHE_DIR"]).resolve()
    assert path.read_bytes() == b"hostile"
    assert path.resolve().is_relative_to(cache) and video.video_id in path.name  # named by id, not by key
    release_copy(video, path)
    assert not path.exists()


def test_fetch_refuses_a_key_with_dot_dot_segments(s3):
    video = next(v for v in list_sources("s3://films/s1") if "escape" in v.uri)
    with pytest.raises(FetchError, match=r"unsafe object key: it has a '\.' or '\.\.' path segment"):
        local_copy(video)


def test_fetch_of_a_vanished_object_names_it(s3):
    gone = VideoSource(uri="s3://films/s1/gone.mp4", local_path="s3://films/s1/gone.mp4", video_id="gone")
    with pytest.raises(FetchError, match=r"gone.mp4: object does not exist"):
        local_copy(gone)


def test_a_symlink_and_a_hard_link_to_one_film_are_one_video(tmp_path):
    import os

    films = tmp_path / "films"
    films.mkdir()
    real = films / "b_film.mp4"
    real.write_bytes(b"\x00" * 1024)
    (films / "a_symlink.mp4").symlink_to(real)
    os.link(real, films / "c_hardlink.mp4")
    (films / "other.mp4").write_bytes(b"\x01" * 1024)
    videos = list_sources(str(films))
    assert len(videos) == 2
    linked = next(v for v in videos if v.uri != str((films / "other.mp4").resolve()))
    # the smallest resolved path of the three names: the symlink resolves to the film itself
    assert linked.uri == str(real.resolve())
    # the same file listed twice in a manifest is one video too
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"uri\n{real}\n{films / 'c_hardlink.mp4'}\n{films / 'a_symlink.mp4'}\n")
    assert [v.video_id for v in list_sources(str(manifest))] == [linked.video_id]
