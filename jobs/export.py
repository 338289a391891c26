"""`v2s export`: an output's records in the layouts the usual fine-tuning tools read (docs/training.md).

Each layout is a pydantic model of one row, written from the documentation of its tool:
- LLaMA-Factory, `data/README.md` "Multimodal Video Dataset" (sharegpt): `conversations` of `from`/`value` turns
  with one `<video>` per entry of `videos`, registered in a `dataset_info.json` next to the files;
- ms-swift, "Custom Dataset" (`messages` of `role`/`content`, media paths in `videos`);
- Qwen-VL fine-tuning (`qwen-vl-finetune/README.md`): `video` as one path, `conversations` of `from`/`value`;
- `hf`: the typed records themselves with a dataset card; `sharegpt`: plain text conversations.

The conversion is pure (`convert`, `split_of`, `render`); `export` only reads shards and writes files. Rows are
sorted and serialised the same way every time, so the same output gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from annotator.dataset_card import arrow_schema, features, to_yaml
from annotator.records import THINK_TAG, tagged, without_placeholders
from annotator.schemas.record import SCHEMA_VERSION, Record
from annotator.video_script import merge_videos
from workers.storage import filesystem, is_remote, join, located, normalise


class ExportFormat(StrEnum):
    HF = "hf"
    LLAMAFACTORY = "llamafactory"
    SWIFT = "swift"
    QWENVL = "qwenvl"
    SHAREGPT = "sharegpt"
    PARQUET = "parquet"  # the records as Parquet, every column typed by the card's schema


class PathStyle(StrEnum):
    ABSOLUTE = "absolute"
    RELATIVE = "relative"  # relative to the export folder (LLaMA-Factory's media_dir, Qwen-VL's data_path)


class ExportOptions(BaseModel):
    format: ExportFormat
    paths: PathStyle = PathStyle.ABSOLUTE
    copy_media: bool = False
    think_tag: str = THINK_TAG
    include_rejected: bool = False
    splits: dict[str, float] = Field(default_factory=lambda: {"train": 1.0})
    name: str = "v2s"
    corrected: bool = False  # reviewed segments with the reviewers' script (jobs/review/corrected.py)
    # also each video's whole script (annotator/video_script.py): SPLIT.videos.jsonl beside SPLIT.jsonl
    whole_videos: bool = False

    @field_validator("think_tag")
    @classmethod
    def _bare_tag(cls, value: str) -> str:
        tag = value.strip().strip("<>/")
        if not tag or any(c in tag for c in "<> \n"):
            raise ValueError(f"{value!r} is not a tag name (e.g. think, thinking)")
        return tag

    @field_validator("splits")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(f < 0 for f in value.values()) or abs(sum(value.values()) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be non-negative and sum to 1, got {value}")
        return value

    def keeps(self, record: Record) -> bool:
        """Records the quality gates accepted, or every record with include_rejected (records other tools wrote
        with `quality.accepted: false`; the engine's rejected segments are in OUT/rejects/, not in shards)."""
        return record.quality.accepted or self.include_rejected


def parse_splits(text: str) -> dict[str, float]:
    """`train=0.98,validation=0.02` → {"train": 0.98, "validation": 0.02}, in the order given."""
    splits: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, fraction = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r}: write a split as NAME=FRACTION")
        splits[name.strip()] = float(fraction)
    return splits


# -- the rows of each layout -------------------------------------------------------------------------


class Turn(BaseModel):
    """A sharegpt turn (LLaMA-Factory's default tags, Qwen-VL's conversations)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from", pattern="^(human|gpt|system)$")
    value: str


class ChatMessage(BaseModel):
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str


class ShareGptRow(BaseModel):
    id: str
    conversations: list[Turn]


class LlamaFactoryRow(ShareGptRow):
    videos: list[str] = Field(min_length=1)


class SwiftRow(BaseModel):
    id: str
    messages: list[ChatMessage]
    videos: list[str] = Field(min_length=1)


class QwenVlRow(BaseModel):
    id: str
    video: str
    conversations: list[Turn]


ROW_MODELS: dict[ExportFormat, type[BaseModel]] = {
    ExportFormat.HF: Record,
    ExportFormat.LLAMAFACTORY: LlamaFactoryRow,
    ExportFormat.SWIFT: SwiftRow,
    ExportFormat.QWENVL: QwenVlRow,
    ExportFormat.SHAREGPT: ShareGptRow,
}
_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}


# -- pure conversion -----------------------------------------------------------------------------------


def split_of(video_id: str, splits: dict[str, float]) -> str:
    """The split of a whole video: a hash of its id placed on [0, 1), so every segment of a film lands in the
    same split (no film leaks from train into validation) and the choice never changes between exports."""
    point = int(hashlib.sha256(video_id.encode()).hexdigest()[:15], 16) / 16**15
    edge = 0.0
    for name, fraction in splits.items():
        edge += fraction
        if point < edge:
            return name
    return next(reversed(splits))  # float rounding at the top end


def retagged(record: Record, tag: str) -> list[tuple[str, str]]:
    """(role, content) of the record's messages with its reasoning wrapped in `<tag>…</tag>`."""
    original = without_placeholders(tagged(record.thinking))
    out = []
    for message in record.messages:
        content = message.content
        if message.role == "assistant" and tag != THINK_TAG and content.startswith(original):
            content = without_placeholders(tagged(record.thinking, tag)) + content[len(original) :]
        out.append((message.role, content))
    return out


def convert(record: Record, fmt: ExportFormat, video: str | None, tag: str = THINK_TAG) -> BaseModel:
    """One record as one row of `fmt`; `video` is the path the row names (None for the text-only layouts)."""
    if fmt in (ExportFormat.HF, ExportFormat.PARQUET):
        return record
    messages = retagged(record, tag)
    if fmt is ExportFormat.SWIFT:
        chat = [ChatMessage(role=r, content=c) for r, c in messages]
        return SwiftRow(id=record.id, messages=chat, videos=[video])
    if fmt is ExportFormat.SHAREGPT:  # no media column, so no media placeholder either
        messages = [(r, c.replace("<video>\n", "").replace("<video>", "")) for r, c in messages]
    turns = [Turn(from_=_SHAREGPT_ROLE[r], value=c) for r, c in messages]
    if fmt is ExportFormat.LLAMAFACTORY:
        return LlamaFactoryRow(id=record.id, conversations=turns, videos=[video])
    if fmt is ExportFormat.QWENVL:
        return QwenVlRow(id=record.id, video=video, conversations=turns)
    return ShareGptRow(id=record.id, conversations=turns)


def jsonl(rows: list[BaseModel]) -> bytes:
    """One JSON line per row, aliases as the tools spell them (`from`), no key a tool would not expect."""
    lines = [row.model_dump_json(by_alias=True) for row in rows]
    return "".join(f"{line}\n" for line in lines).encode()


def parquet(rows: list[BaseModel]) -> bytes:
    """Records as one Parquet file typed by the record schema (annotator/dataset_card.arrow_schema): no column
    is null-typed because one file's rows happen to leave it empty, so files concatenate and load anywhere."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    table = pa.Table.from_pylist([row.model_dump(mode="json") for row in rows], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def llamafactory_info(name: str, splits: list[str]) -> dict:
    """`dataset_info.json` entries, one per split, as LLaMA-Factory's data/README.md describes them."""
    return {
        f"{name}_{split}": {
            "file_name": f"{split}.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "videos": "videos"},
        }
        for split in splits
    }


def hf_card(splits: list[str]) -> str:
    """A dataset card for the exported records: one config, one data file per split, the record features."""
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{s}.jsonl"} for s in splits],
                "default": True,
            }
        ],
        "dataset_info": {"config_name": "default", "features": features()},
    }
    return f"---\n{to_yaml(front)}---\n\n# v2s records (schema {SCHEMA_VERSION}), exported by `v2s export`\n"


def render(
    records: list[Record], options: ExportOptions, video_of: dict[str, str | None]
) -> dict[str, bytes]:
    """Every file of the export (relative name → bytes), from records and each record's video path."""
    kept = [r for r in records if options.keeps(r)]
    kept.sort(key=lambda r: (r.video.video_id, r.video.start_s, r.id))
    by_split: dict[str, list[BaseModel]] = {name: [] for name in options.splits}
    for record in kept:
        row = convert(record, options.format, video_of.get(record.id), options.think_tag)
        by_split[split_of(record.video.video_id, options.splits)].append(row)
    # every split asked for is written or the export is refused: a missing file breaks the trainer's config
    # that names it ("Undefined dataset v2s_validation"), and an empty one makes the loaders fail
    empty = [n for n, rows in by_split.items() if not rows and options.splits[n] > 0] if kept else []
    if empty:
        videos = len({r.video.video_id for r in kept})
        raise ValueError(_split_refusal(empty, options.splits, videos))
    names = [name for name, rows in by_split.items() if rows] or list(by_split)[:1]
    if options.format is ExportFormat.PARQUET:
        files = {f"{split}.parquet": parquet(by_split[split]) for split in names}
    else:
        files = {f"{split}.jsonl": jsonl(by_split[split]) for split in names}
    if options.whole_videos:
        for split in names:
            videos = [r for r in kept if split_of(r.video.video_id, options.splits) == split]
            files[f"{split}.videos.jsonl"] = jsonl(merge_videos(videos))
    if options.format is ExportFormat.LLAMAFACTORY:
        files["dataset_info.json"] = _json(llamafactory_info(options.name, names))
    if options.format is ExportFormat.HF:
        files["README.md"] = hf_card(names).encode()
    return files


def _split_refusal(empty: list[str], splits: dict[str, float], videos: int) -> str:
    """Why splits got no video: splits go by whole video, so a small fraction needs many videos."""
    smallest = min(splits[n] for n in empty)
    need = math.ceil(3 / smallest)  # enough that a video lands in it with ~95% odds
    shown = ", ".join(f"{n} ({splits[n]:.0%})" for n in empty)
    return (
        f"split {shown} received no video: splits go by whole video (no film in two splits), and none of the "
        f"{videos} videos exported fell there; a {smallest:.0%} split needs about {need} videos, so give it a "
        "larger fraction or leave it out"
    )


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


# -- reading an output, placing media, writing the export ------------------------------------------


class ExportSummary(BaseModel):
    to: str
    files: dict[str, int]  # name → rows (JSONL) or bytes (other files)
    skipped_rejected: int = 0
    media_copied: int = 0
    corrected: int = 0  # records with a reviewer's script (--corrected)


def read_records(out: str) -> list[Record]:
    """Every record of every shard of an output (local folder or bucket), validated, its proxy located where
    the output is now (records name proxies inside the output relative to it)."""
    fs, root = filesystem(join(out, "shards"))
    names = sorted(p for p in fs.glob(f"{root}/part-*.jsonl"))
    records = [
        Record.model_validate_json(line) for name in names for line in fs.cat_file(name).splitlines() if line
    ]
    for record in records:
        if record.video.proxy_uri:
            record.video.proxy_uri = located(record.video.proxy_uri, out)
    return records


def media_plan(records: list[Record], to: str, options: ExportOptions) -> tuple[dict[str, str], dict]:
    """(record id → the path its row names, copy target → source URI for --copy-media)."""
    video_of: dict[str, str] = {}
    copies: dict[str, str] = {}
    for record in records:
        source = record.video.proxy_uri or record.video.uri
        target = source
        if options.copy_media:
            suffix = posixpath.splitext(source)[1] or ".mp4"
            relative = f"media/{record.video.video_id}/{record.video.segment_index:05d}{suffix}"
            copies[relative] = source
            target = join(to, relative)
        video_of[record.id] = _styled(target, to, options.paths)
    return video_of, copies


def _styled(path: str, to: str, style: PathStyle) -> str:
    if style is PathStyle.ABSOLUTE:
        return path if is_remote(path) else str(Path(path).resolve())
    if is_remote(path) or is_remote(to):
        if is_remote(path) and is_remote(to) and path.startswith(to.rstrip("/") + "/"):
            return path[len(to.rstrip("/")) + 1 :]
        raise ValueError(f"{path}: a path relative to {to} needs both on one filesystem (or --copy-media)")
    return Path(os.path.relpath(Path(path).resolve(), Path(to).resolve())).as_posix()


def export(out: str, to: str, options: ExportOptions, corrections=None) -> ExportSummary:
    """Write the records of `out` to `to` in `options.format`; returns what was written. `corrections`
    (records → (records, how many corrected)) puts the reviewers' scripts in (`--corrected`)."""
    out, to = str(normalise(out)), str(normalise(to))
    if not is_remote(to):
        to = str(Path(to).resolve())
    records = read_records(out)
    corrected = 0
    if corrections is not None:
        records, corrected = corrections(records)
    kept = [r for r in records if options.keeps(r)]
    video_of, copies = media_plan(kept, to, options)
    files = render(kept, options, video_of)
    for relative, source in sorted(copies.items()):
        copy_object(source, join(to, relative))
    for name, data in files.items():
        write_bytes(join(to, name), data)
    rejected = len(records) - len(kept)
    counted = {n: d.count(b"\n") if n.endswith(".jsonl") else len(d) for n, d in files.items()}
    return ExportSummary(
        to=to, files=counted, skipped_rejected=rejected, media_copied=len(copies), corrected=corrected
    )


def write_bytes(uri: str, data: bytes) -> None:
    """Write one file of an export whole or not at all: a killed process, a full disk or a failed write never
    leaves part of a file under its final name (a reader would take 10 of 20 rows for the dataset). A bucket
    object is one PUT, visible only once complete; a local file goes through a temp file and a rename."""
    if is_remote(uri):
        fs, path = filesystem(uri)
        fs.pipe_file(path, data)
        return
    write_local_atomically(Path(filesystem(uri)[1]), data)


def write_local_atomically(target: Path, data: bytes) -> None:
    """Temp file beside `target` (one rename within a folder is atomic), fsync'd before the rename so a crash
    right after it cannot show an empty file either. The temp name is unique per writer and hidden, and does not
    end in the target's suffix, so globs such as `*.jsonl` never pick it up; a failed write removes it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.partial")
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def copy_object(source: str, target: str) -> None:
    """A proxy into the export: read through fsspec, so a bucket proxy is fetched like a local one."""
    src_fs, src_path = filesystem(source)
    write_bytes(target, src_fs.cat_file(src_path))
