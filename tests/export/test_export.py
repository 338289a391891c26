"""`v2s export` on a real run (a rendered film → Ray → the simulator over HTTP → shards and proxies), each layout
checked against its tool's documented format, and the published schemas against the records and OmniScript.

None of the tools' own loaders runs here without a GPU stack or a model download (LLaMA-Factory's loader needs a
tokenizer and torch, ms-swift's preprocessors its templates, Qwen-VL's data module a processor), so each export is
read the way their loaders start, `datasets.load_dataset("json", data_files=...)` (LLaMA-Factory
`src/llamafactory/data/loader.py`, ms-swift's local-file loading), and then checked against the format as the
tool documents it:
- LLaMA-Factory `data/README.md`, "Sharegpt Format / Multimodal Video Dataset": `conversations` of `from`/`value`,
  human turns in odd positions and gpt in even ones, a `videos` list with as many paths as `<video>` tags, and a
  `dataset_info.json` entry `{"file_name", "formatting": "sharegpt", "columns": {"messages", "videos"}}`; relative
  media paths are resolved against the dataset folder (its `media_dir` default).
- ms-swift docs, "Custom Dataset": `{"messages": [{"role", "content"}], "videos": [path]}`, `<video>` in the
  user content once per video.
- Qwen-VL `qwen-vl-finetune/README.md`, "Custom Dataset Configuration": `video` (one path, relative to the
  dataset's `data_path` or absolute), `conversations` of `from`/`value`, one `<video>` tag in the question and
  none in the answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import av
import boto3
import jsonschema
import pytest
from typer.testing import CliRunner

from annotator.schemas import SCHEMA_VERSION, SCHEMAS, Record, Script, json_schema
from annotator.schemas.record import RecordQuality
from annotator.simulator.server import SimulatorServer
from jobs.cli import app
from jobs.export import ROW_MODELS, ExportFormat, split_of
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database, sqlite_url
from profiles_db.models import Segment
from tests.export.shapes import write_shapes
from tests.support import e2e
from tests.support.films import film_copy
from tests.support.play import make_proxy, small_screenplay
from workers.shards import ShardWriter

pytestmark = [pytest.mark.slow, pytest.mark.shared_ray]
datasets = pytest.importorskip("datasets")
HERE = Path(__file__).parent
FORMATS = [
    f.value for f in ExportFormat if f is not ExportFormat.PARQUET
]  # rows of JSON (Parquet: test_typed_shards)


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    """One real job on the small play (90 s, a few segments): shards, manifest, card and proxies."""
    base = tmp_path_factory.mktemp("export-run")
    screenplay = small_screenplay()
    film = film_copy(screenplay, base / "film" / "the last train.mp4")
    with SimulatorServer(screenplay) as server, e2e.models_from(server, "sim-test-key-export"):
        _, summary = run_job(JobSpec(source=str(film), out=base / "out", max_segment_s=90, num_cpus=2))
    assert summary.records_written >= 1 and not summary.failed_videos
    return base / "out"


def _export(out, to, *flags: str) -> None:
    result = CliRunner().invoke(app, ["export", str(out), "--to", str(to), *flags])
    assert result.exit_code == 0, result.output


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _records(out: Path) -> list[dict]:
    return [r for p in sorted((out / "shards").glob("part-*.jsonl")) for r in _rows(p)]


def _readable_video(path: str | Path) -> None:
    with av.open(str(path)) as container:
        assert container.streams.video, f"{path} has no video stream"
        next(container.decode(video=0))


# -- schemas -------------------------------------------------------------------------------------------


def test_every_published_schema_has_a_versioned_id():
    runner = CliRunner()
    for name in SCHEMAS:
        printed = json.loads(runner.invoke(app, ["schema", name]).stdout)
        assert printed["$id"] == f"urn:v2s:schema:{name}:{SCHEMA_VERSION}"
        jsonschema.Draft202012Validator.check_schema(printed)


def test_the_omniscript_readme_example_validates():
    # TencentARC/OmniScript README.md, "Output Schema": no high_points[].id, duration as HH:MM:SS
    example = json.loads((HERE / "omniscript_example.json").read_text())
    jsonschema.validate(example, json_schema("script"))
    script = Script.model_validate(example)
    assert script.high_points[0].id is None and script.meta.duration == "00:05:00"


def test_every_record_and_its_script_validate_against_the_published_schemas(run_out):
    record_schema, script_schema = json_schema("record"), json_schema("record-script")
    for record in _records(run_out):
        jsonschema.validate(record, record_schema)
        jsonschema.validate(record["script"], script_schema)
        assert record["schema_version"] == SCHEMA_VERSION
        assert re.fullmatch(r"\d\d:\d\d:\d\d", record["script"]["meta"]["duration"])
        assert record["quality"]["accepted"] is True


def test_the_run_output_loads_with_datasets_as_typed_records(run_out, tmp_path):
    loaded = datasets.load_dataset(str(run_out), split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded["id"]) == sorted(r["id"] for r in _records(run_out))


# -- the layouts ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(run_out, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    made = {}
    for fmt in FORMATS:
        _export(run_out, base / fmt, "--format", fmt)
        made[fmt] = base / fmt
    return made


def _one_split(folder: Path) -> list[dict]:
    rows = [r for path in sorted(folder.glob("*.jsonl")) for r in _rows(path)]
    assert rows
    return rows


def _loaded(folder: Path, tmp_path: Path) -> list[dict]:
    """The export read the way the tools' loaders start: datasets' json builder over the files."""
    files = [str(p) for p in sorted(folder.glob("*.jsonl")) if p.stat().st_size]
    return list(datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(tmp_path)))


def test_llamafactory_sharegpt_with_videos_and_its_dataset_info(exports, tmp_path):
    folder = exports["llamafactory"]
    info = json.loads((folder / "dataset_info.json").read_text())
    assert set(info) <= {"v2s_train", "v2s_validation"} and info  # only splits a video fell into
    for entry in info.values():
        assert entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "conversations", "videos": "videos"}
        assert (folder / entry["file_name"]).exists()
    for row in _loaded(folder, tmp_path):
        turns = row["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        tags = sum(t["value"].count("<video>") for t in turns)
        assert tags == len(row["videos"]) == 1
        _readable_video(folder / row["videos"][0])  # absolute here; LLaMA-Factory joins media_dir otherwise


def test_swift_messages_and_videos(exports, tmp_path):
    for row in _loaded(exports["swift"], tmp_path):
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][0]["content"].count("<video>") == len(row["videos"]) == 1
        assert row["messages"][1]["content"].startswith("<think>\n")
        _readable_video(row["videos"][0])


def test_qwenvl_video_path_and_conversations(exports, tmp_path):
    for row in _loaded(exports["qwenvl"], tmp_path):
        assert isinstance(row["video"], str)
        human, gpt = row["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].startswith("<video>\n") and human["value"].count("<video>") == 1
        assert "<video>" not in gpt["value"]
        _readable_video(row["video"])


def test_sharegpt_is_plain_text(exports):
    for row in _one_split(exports["sharegpt"]):
        assert set(row) == {"id", "conversations"}
        assert all("<video>" not in t["value"] for t in row["conversations"])


def test_hf_export_loads_with_its_card(exports, run_out, tmp_path):
    loaded = datasets.load_dataset(str(exports["hf"]), cache_dir=str(tmp_path))
    ids = sorted(i for split in loaded.values() for i in split["id"])
    assert ids == sorted(r["id"] for r in _records(run_out))


def test_every_row_is_its_documented_model(exports):
    for fmt, folder in exports.items():
        for row in _one_split(folder):
            ROW_MODELS[ExportFormat(fmt)].model_validate(row)


# -- options -------------------------------------------------------------------------------------------


def test_the_same_output_gives_byte_identical_exports(run_out, exports, tmp_path):
    _export(run_out, tmp_path / "again", "--format", "llamafactory")
    first = exports["llamafactory"]
    assert sorted(p.name for p in first.iterdir()) == sorted(p.name for p in (tmp_path / "again").iterdir())
    for path in first.iterdir():
        assert path.read_bytes() == (tmp_path / "again" / path.name).read_bytes()


def test_relative_paths_and_copied_media_resolve_to_readable_files(run_out, tmp_path):
    _export(run_out, tmp_path / "rel", "--format", "qwenvl", "--paths", "relative")
    for row in _rows(tmp_path / "rel" / "train.jsonl"):
        assert not os.path.isabs(row["video"])
        _readable_video(tmp_path / "rel" / row["video"])
    _export(run_out, tmp_path / "copied", "--format", "swift", "--copy-media", "--paths", "relative")
    for row in _rows(tmp_path / "copied" / "train.jsonl"):
        assert row["videos"][0].startswith("media/")
        _readable_video(tmp_path / "copied" / row["videos"][0])


def test_an_output_moved_whole_exports_and_verifies_where_it_is_now(run_out, tmp_path):
    """Annotate here, rsync OUT to the training cluster, export there (#33): the records name their proxies
    relative to the output, so nothing points back at the folder the run wrote."""
    for record in _records(run_out):
        assert record["video"]["proxy_uri"].startswith("proxies/"), record["video"]["proxy_uri"]
    moved = tmp_path / "cluster" / "out"
    moved.parent.mkdir()
    shutil.move(run_out, moved)  # the old folder is gone, as on the other machine
    try:
        _export(moved, tmp_path / "lf", "--format", "llamafactory")
        for row in _rows(tmp_path / "lf" / "train.jsonl"):
            assert row["videos"][0].startswith(str(moved)), row["videos"][0]
            _readable_video(row["videos"][0])
        _export(moved, tmp_path / "copied", "--format", "swift", "--copy-media", "--paths", "relative")
        for row in _rows(tmp_path / "copied" / "train.jsonl"):
            _readable_video(tmp_path / "copied" / row["videos"][0])
        verified = CliRunner().invoke(app, ["verify", str(moved)])
        assert verified.exit_code == 0, verified.output
        (moved / next(iter(_records(moved)))["video"]["proxy_uri"]).unlink()  # now one really is missing
        assert CliRunner().invoke(app, ["verify", str(moved)]).exit_code == 1
    finally:
        shutil.rmtree(run_out, ignore_errors=True)
        shutil.copytree(moved, run_out)  # the module's other tests read it where it was
        rebuilt = CliRunner().invoke(app, ["verify", str(run_out), "--repair"])
        assert rebuilt.exit_code == 0, rebuilt.output


def test_the_reasoning_tag_is_configurable(run_out, tmp_path):
    _export(run_out, tmp_path / "tagged", "--format", "qwenvl", "--think-tag", "thinking")
    for row in _rows(tmp_path / "tagged" / "train.jsonl"):
        answer = row["conversations"][1]["value"]
        assert answer.startswith("<thinking>\n") and "\n</thinking>\n" in answer and "<think>" not in answer
        json.loads(answer.split("</thinking>\n", 1)[1])  # the script after the reasoning is still JSON


def test_splits_go_by_video_and_rejected_records_stay_out(tmp_path):
    out = tmp_path / "out"
    write_shapes(out, tmp_path / "v2s.sqlite")
    _reject_one_more(out, tmp_path / "v2s.sqlite")
    _export(out, tmp_path / "split", "--format", "sharegpt", "--split", "train=0.5,validation=0.5")
    rows = {r["id"]: p.stem for p in (tmp_path / "split").glob("*.jsonl") for r in _rows(p)}
    records = {r["id"]: r for r in _records(out)}
    assert len(rows) == 3 and all(records[i]["quality"]["accepted"] for i in rows)
    for record_id, split in rows.items():
        assert split == split_of(records[record_id]["video"]["video_id"], {"train": 0.5, "validation": 0.5})
    _export(out, tmp_path / "all", "--format", "sharegpt", "--include-rejected")
    assert len(_rows(tmp_path / "all" / "train.jsonl")) == 4


def test_a_split_no_video_falls_into_is_refused_never_dropped(run_out, tmp_path):
    """A 2% validation split of a one-film run gets no video: the export says so and writes nothing, instead of
    leaving out validation.jsonl that the written dataset_info.json or card then misses."""
    done = CliRunner().invoke(
        app,
        [
            "export",
            str(run_out),
            "--to",
            str(tmp_path / "x"),
            "--format",
            "llamafactory",
            "--split",
            "train=0.98,validation=0.02",
        ],
        env={"COLUMNS": "300"},
    )
    assert done.exit_code == 2, done.output
    # The film's id hashes its path and mtime, so which split it lands in differs between runs: the other is empty.
    splits = {"train": 0.98, "validation": 0.02}
    landed = split_of(_records(run_out)[0]["video"]["video_id"], splits)
    empty, need = (
        ("validation (2%)", "about 150 videos") if landed == "train" else ("train (98%)", "about 4 videos")
    )
    assert f"split {empty} received no video" in done.output and need in done.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def _reject_one_more(out: Path, db_path: Path) -> None:
    """A fourth shard whose record the quality gates did not accept (a second segment of vid-a)."""
    accepted = Record.model_validate(_records(out)[0])
    rejected = accepted.model_copy(
        update={"id": "rejected-1", "quality": RecordQuality(accepted=False, problems=["no events"])}
    )
    db = Database(sqlite_url(db_path))
    with db.transaction() as s:
        segment = Segment(video_id="vid-a", idx=2, start_s=0.0, end_s=10.0)
        s.add(segment)
        s.flush()
        segment_id = segment.id
    writer = ShardWriter(out, db, max_records=1)
    writer.write(segment_id, rejected.model_dump_json())
    writer.finish()
    db.dispose()


def test_split_of_is_stable_and_near_the_fractions():
    splits = {"train": 0.9, "validation": 0.1}
    picks = [split_of(f"video-{i}", splits) for i in range(2000)]
    assert picks == [split_of(f"video-{i}", splits) for i in range(2000)]
    assert 0.07 < picks.count("validation") / len(picks) < 0.13


# -- buckets -------------------------------------------------------------------------------------------


def test_export_from_a_bucket_fetches_its_proxies_and_writes_to_a_bucket(tmp_path):
    with e2e.moto_s3(tmp_path / "cache") as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="export-src")
        out = "s3://export-src/v2s/run 1"
        proxies = {}
        for video_id in ("vid-a", "vid-b", "vid-c"):
            local = make_proxy(tmp_path / f"{video_id}.mp4", None)
            key = f"v2s/run 1/proxies/{video_id}/seg_0001.mp4"
            s3.upload_file(str(local), "export-src", key)
            proxies[video_id] = f"s3://export-src/{key}"
        write_shapes(out, tmp_path / "v2s.sqlite", proxies)
        _export(out, tmp_path / "local", "--format", "llamafactory", "--copy-media", "--paths", "relative")
        for row in _rows(tmp_path / "local" / "train.jsonl"):
            _readable_video(tmp_path / "local" / row["videos"][0])
        _export(
            out,
            "s3://export-src/exports/lf",
            "--format",
            "llamafactory",
            "--copy-media",
            "--paths",
            "relative",
        )
        for name in ("train.jsonl", "dataset_info.json"):
            body = s3.get_object(Bucket="export-src", Key=f"exports/lf/{name}")["Body"].read()
            assert body == (tmp_path / "local" / name).read_bytes()
        listed = s3.list_objects_v2(Bucket="export-src", Prefix="exports/lf/media/")["Contents"]
        assert len(listed) == 3
