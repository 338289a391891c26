"""Three shards of one output whose null and empty patterns differ (a series episode; a segment with no
characters, no end times and no series; another model map with a memory gap) load with `datasets` as they
are: `load_dataset(OUT)` and `load_dataset(OUT, streaming=True)` from a folder, and from an S3-compatible
server (moto) through fsspec's storage_options, every record with every field typed.

How `datasets` reads the card was checked in its source (datasets 5.x): `LocalDatasetModuleFactory` takes
`configs[].data_files` and `dataset_info.features` from the README.md YAML; the YAML feature list is what
`Features._to_yaml_list` writes and `Features._from_yaml_list` reads (datasets/features/features.py); the JSON
builder casts every table to those features (datasets/packaged_modules/json/json.py). A bucket path is no
dataset folder for `load_dataset`, so there the features come from the card through
`DatasetInfosDict.from_dataset_card_data`, the reader `datasets` itself uses for a card's `dataset_info`."""

from __future__ import annotations

import json

import fsspec
import pytest

from annotator.dataset_card import features as card_features
from tests.export.shapes import write_shapes
from tests.support import e2e

datasets = pytest.importorskip("datasets")
from datasets import Features, load_dataset  # noqa: E402
from datasets.info import DatasetInfosDict  # noqa: E402
from huggingface_hub import DatasetCard  # noqa: E402


@pytest.fixture(scope="module")
def local_out(tmp_path_factory):
    base = tmp_path_factory.mktemp("typed")
    ids = write_shapes(base / "out", base / "v2s.sqlite")
    return base / "out", ids


def _shard_records(fs, root: str) -> list[dict]:
    names = sorted(fs.glob(f"{root}/shards/part-*.jsonl"))
    assert len(names) >= 3
    return [json.loads(line) for name in names for line in fs.cat_file(name).splitlines()]


def _untyped(feature, path="") -> list[str]:
    """Paths of any feature left as Arrow's null type (what a column that is null everywhere infers to)."""
    if isinstance(feature, dict):
        return [p for k, v in feature.items() for p in _untyped(v, f"{path}.{k}")]
    inner = getattr(feature, "feature", None)
    if inner is not None:
        return _untyped(inner, f"{path}[]")
    return [path] if getattr(feature, "dtype", None) == "null" else []


def _check(rows: list[dict], expected: list[dict], features: Features) -> None:
    assert features == Features._from_yaml_list(card_features())
    assert _untyped(dict(features)) == []
    assert sorted(rows, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])


def test_the_shards_differ_in_what_is_null_or_empty(local_out):
    out, _ = local_out
    records = _shard_records(fsspec.filesystem("file"), str(out))
    by_video = {r["video"]["video_id"]: r for r in records}
    assert (
        by_video["vid-a"]["video"]["series"] == "Harbour Lights"
        and by_video["vid-b"]["video"]["series"] is None
    )
    assert by_video["vid-b"]["characters"] == [] and by_video["vid-a"]["characters"]
    assert by_video["vid-b"]["plot"]["main_events"][0]["involved_characters"] == []
    assert {kv["key"] for kv in by_video["vid-a"]["meta"]["models"]} != {
        kv["key"] for kv in by_video["vid-c"]["meta"]["models"]
    }


def test_load_dataset_reads_every_shard_of_a_folder(local_out, tmp_path):
    out, ids = local_out
    expected = _shard_records(fsspec.filesystem("file"), str(out))
    loaded = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded["id"]) == sorted(ids)
    _check(list(loaded), expected, loaded.features)


def test_streaming_reads_every_shard_of_a_folder(local_out):
    out, _ = local_out
    expected = _shard_records(fsspec.filesystem("file"), str(out))
    stream = load_dataset(str(out), split="train", streaming=True)
    _check(list(stream), expected, stream.features)


def test_the_card_lists_the_shards_of_the_manifest(local_out):
    out, _ = local_out
    manifest = json.loads((out / "manifest.json").read_text())
    card = (out / "README.md").read_text()
    assert all(f"shards/{s['name']}" in card for s in manifest["shards"])
    assert f"{manifest['records']} records" in card


@pytest.fixture(scope="module")
def bucket_out(tmp_path_factory):
    import boto3

    base = tmp_path_factory.mktemp("typed-s3")
    with e2e.moto_s3(base / "cache") as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="train")
        out = "s3://train/v2s/run 1"
        ids = write_shapes(out, base / "v2s.sqlite")
        yield out, ids, {"endpoint_url": endpoint, "key": "moto-test", "secret": "moto-test-secret"}


def _bucket_features(out: str, options: dict) -> Features:
    """The features a user reads from the card in the bucket, with the library's own card readers."""
    with fsspec.open(f"{out}/README.md", "r", **options) as handle:
        card = DatasetCard(handle.read())
    return DatasetInfosDict.from_dataset_card_data(card.data)["default"].features


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streaming"])
def test_load_dataset_reads_every_shard_from_a_bucket(bucket_out, streaming, tmp_path):
    out, ids, options = bucket_out
    fs, root = fsspec.core.url_to_fs(out, **options)
    expected = _shard_records(fs, root)
    loaded = load_dataset(
        "json",
        data_files=f"{out}/shards/part-*.jsonl",
        features=_bucket_features(out, options),
        storage_options=dict(options),  # a copy: load_dataset adds its own "hf" entry to the dict it is given
        split="train",
        streaming=streaming,
        cache_dir=str(tmp_path / "cache"),
    )
    rows = list(loaded)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    _check(rows, expected, loaded.features)


def test_a_parquet_export_is_typed_by_the_record_schema_and_reads_back(local_out, tmp_path):
    """`v2s export --format parquet`: each split one Parquet file whose columns carry the record schema's types,
    whatever the rows leave empty (Ray Data, pyarrow and `datasets` read it back, #33)."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from annotator.dataset_card import arrow_schema
    from jobs.cli import app

    out, ids = local_out
    one = CliRunner().invoke(app, ["export", str(out), "--to", str(tmp_path / "pq"), "--format", "parquet"])
    assert one.exit_code == 0, one.output
    table = pq.read_table(tmp_path / "pq" / "train.parquet")
    assert table.schema.remove_metadata() == arrow_schema() and table.num_rows == len(ids)
    assert not [f.name for f in table.schema if str(f.type) == "null"]
    assert table.column("review").null_count == len(ids)  # null everywhere, typed all the same
    # a reader that knows nothing of v2s: the same rows, typed, through `datasets`
    loaded = load_dataset(
        "parquet", data_files=str(tmp_path / "pq" / "train.parquet"), cache_dir=str(tmp_path / "c")
    )
    assert sorted(loaded["train"]["id"]) == sorted(ids)
    assert _untyped(dict(loaded["train"].features)) == []
