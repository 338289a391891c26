"""Prompt templates from prompts/: loading, versions and rendering."""

from __future__ import annotations

import hashlib
import json
import string
from functools import cache
from importlib import resources

from pydantic import BaseModel

STAGES = ("plot_first", "plot_next", "script", "distill")


class Prompt(BaseModel):
    stage: str
    version: str  # e.g. "plot_next.v1"
    text: str


@cache
def template(stage: str, version: int = 1) -> string.Template:
    if stage not in STAGES:
        raise KeyError(f"unknown prompt stage {stage!r}; known: {', '.join(STAGES)}")
    name = f"{stage}.v{version}.md"
    try:
        text = resources.files("prompts").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"prompt template prompts/{name} does not exist") from None
    return string.Template(text)


def template_digest(stage: str, version: int = 1) -> str:
    """The template's content, hashed: record ids include it, so an edited template annotates again."""
    return hashlib.sha256(template(stage, version).template.encode()).hexdigest()[:16]


def render(stage: str, version: int = 1, **values: object) -> Prompt:
    """Fill a template; a missing placeholder is an error, not a silent '$name' in the prompt."""
    text = template(stage, version).substitute({k: _text(v) for k, v in values.items()})
    return Prompt(stage=stage, version=f"{stage}.v{version}", text=text)


def _text(value: object) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=1, exclude_none=True)
    if isinstance(value, list | dict):
        return json.dumps(value, indent=1, ensure_ascii=False, default=_default)
    return str(value)


def _default(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot render {type(value).__name__} into a prompt")
