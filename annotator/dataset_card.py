"""The Hugging Face dataset card of an output (`OUT/README.md`), its features derived from the record model.

`datasets.load_dataset(OUT)` reads a local folder's `README.md` YAML front matter: `configs` says which files are
the data (so the proxies under `OUT/proxies/` are not taken for a video dataset) and `dataset_info.features`
gives every column one declared type (so a column that is all null or empty in one shard and typed in another
is cast to the declared type instead of failing with "Couldn't cast array of type string to null"). The feature
list is the YAML form `datasets.Features._to_yaml_list` writes and `Features._from_yaml_list` reads
(datasets/features/features.py): `{name, dtype}` for a value, `{name, struct: [...]}` for an object,
`{name, list: ...}` for a list. It is derived from the pydantic models here, so it cannot drift from them.
"""

from __future__ import annotations

import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from annotator.schemas.record import SCHEMA_VERSION, Record

DATA_FILES = "shards/part-*.jsonl"
_SCALARS: dict[type, str] = {str: "string", int: "int64", float: "float64", bool: "bool"}


def features(model: type[BaseModel] = Record) -> list[dict]:
    """The model's fields as the YAML feature list of a dataset card, in field order (the JSON key order)."""
    return [{"name": name, **feature(field.annotation)} for name, field in model.model_fields.items()]


def feature(annotation: Any) -> dict:
    """One type as a card feature: `{"dtype": ...}`, `{"struct": [...]}` or `{"list": ...}`."""
    origin = get_origin(annotation)
    if origin is Annotated:  # validators and serialisers change no type (Seconds is a float)
        return feature(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        present = [a for a in get_args(annotation) if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"{annotation!r}: a record field has one type (or null), not a union")
        return feature(present[0])  # every Arrow type is nullable: null is a value of the declared type
    if origin is Literal:
        values = get_args(annotation)
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"{annotation!r}: only string literals map to a feature")
        return {"dtype": "string"}
    if origin in (list, tuple):
        return {"list": _list_item(feature(get_args(annotation)[0]))}
    if origin is dict or annotation is dict:
        raise TypeError("an open dict has no fixed feature type: use a list of {key, value} or fixed fields")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"struct": features(annotation)}
    if annotation in _SCALARS:
        return {"dtype": _SCALARS[annotation]}
    raise TypeError(f"no dataset feature for {annotation!r}")


def _list_item(item: dict) -> Any:
    """The short forms `Features._to_yaml_list` writes: `list: string`, `list: [fields]`, `list: {list: …}`."""
    if list(item) == ["dtype"]:
        return item["dtype"]
    if list(item) == ["struct"]:
        return item["struct"]
    return item


def render_card(shards: list[dict], records: int) -> str:
    """`OUT/README.md`: YAML front matter for `datasets`, then a short human description of this output."""
    front = {
        "pretty_name": "v2s video-to-script records",
        "tags": ["video", "video-to-script", "screenplay", "sft"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": DATA_FILES}],
                "default": True,
            }
        ],
        "dataset_info": {"config_name": "default", "features": features()},
    }
    listing = "\n".join(f"- `shards/{s['name']}`: {s['records']} records" for s in shards) or "- (none yet)"
    return (
        f"---\n{to_yaml(front)}---\n\n"
        "# v2s video-to-script records\n\n"
        f"One JSON line per video segment, record schema {SCHEMA_VERSION} (`v2s schema record`). "
        f"This output holds {records} records in {len(shards)} shards; `manifest.json` has their sizes and "
        "sha256.\n\n"
        f"{listing}\n\n"
        "```python\nfrom datasets import load_dataset\n\n"
        'records = load_dataset("path/to/this/folder", split="train")\n```\n\n'
        "Training layouts for LLaMA-Factory, ms-swift and Qwen-VL: `v2s export` (docs/training.md).\n"
    )


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (strings JSON-quoted, which YAML reads as double-quoted
    scalars): enough for a card, and no YAML library at run time."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if _is_scalar(item) or item in ([], {}):
                lines.append(f"{pad}{key}: {_scalar(item)}\n")
            else:
                nested = indent + 2 if isinstance(item, dict) else indent
                lines.append(f"{pad}{key}:\n{to_yaml(item, nested)}")
        return "".join(lines)
    if isinstance(value, list):
        lines = []
        for item in value:
            if _is_scalar(item) or item in ([], {}):
                lines.append(f"{pad}- {_scalar(item)}\n")
            else:  # the item's first line goes after the dash, the rest under it
                body = to_yaml(item, indent + 2)
                lines.append(f"{pad}- {body[indent + 2 :]}")
        return "".join(lines)
    return f"{pad}{_scalar(value)}\n"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(value: Any) -> str:
    if value == []:
        return "[]"
    if value == {}:
        return "{}"
    return json.dumps(value, ensure_ascii=False)


def arrow_schema(model: type[BaseModel] = Record):
    """The model as an Arrow schema, from the same feature list as the card: a Parquet file written with it has
    every column typed whatever its rows hold (null-only columns stay strings, lists, structs)."""
    import pyarrow as pa

    return pa.schema([pa.field(f["name"], _arrow(f)) for f in features(model)])


def _arrow(node: Any):
    import pyarrow as pa

    if isinstance(node, str):  # a list's short form: `list: string`
        return _ARROW_SCALARS[node]()
    if isinstance(node, list):  # a list's short form: `list: [fields]`
        return pa.struct([pa.field(f["name"], _arrow(f)) for f in node])
    if "dtype" in node:
        return _ARROW_SCALARS[node["dtype"]]()
    if "struct" in node:
        return pa.struct([pa.field(f["name"], _arrow(f)) for f in node["struct"]])
    return pa.list_(_arrow(node["list"]))


def _arrow_scalars() -> dict:
    import pyarrow as pa

    return {"string": pa.string, "int64": pa.int64, "float64": pa.float64, "bool": pa.bool_}


class _LazyScalars(dict):
    def __missing__(self, key: str):
        self.update(_arrow_scalars())
        return self[key]


_ARROW_SCALARS: dict = _LazyScalars()
