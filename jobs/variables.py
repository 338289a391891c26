"""Which `V2S_*` names v2s reads, and the ones set in the environment or `.env` that it does not.

pydantic-settings ignores names it does not know (`extra="ignore"`: the environment holds much besides v2s's),
so a typo such as `V2S_PLOT_MODLE` would run the default model without a word. The known names are taken from
the settings classes themselves (prefix, field names, aliases, nested `__` fields), never listed by hand, so a
new setting is known the day it is added.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import AliasChoices, BaseModel
from pydantic_settings import BaseSettings

PREFIX = "V2S_"
# Read directly where they are used, not through a settings class.
DIRECT = frozenset({"V2S_FFMPEG", "V2S_RAY_TOKEN"})
# Owned by others: the simulator's own knobs and the test suite's switches.
FOREIGN_PREFIXES = ("V2S_SIM_", "V2S_TEST_", "V2S_REQUIRE_")
FOREIGN = frozenset({"V2S_KUBERAY_CRDS", "V2S_LABEL_STUDIO_VENV", "V2S_CPM_EXAMPLES"})


def _names(model: type[BaseModel], prefix: str, delimiter: str | None) -> Iterable[str]:
    for name, field in model.model_fields.items():
        yield (prefix + name).upper()
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
        yield from (choice.upper() for choice in choices if isinstance(choice, str))
        nested = field.annotation
        if delimiter and isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from _names(nested, f"{prefix}{name}{delimiter}", delimiter)


def settings_classes() -> list[type[BaseSettings]]:
    from annotator.settings import ModelKeys, ModelSettings
    from evaluation.judges.llm import JudgeSettings
    from jobs.settings import EngineSettings
    from workers.splitter.settings import SplitSettings
    from workers.storage import StorageSettings

    return [ModelSettings, ModelKeys, EngineSettings, StorageSettings, SplitSettings, JudgeSettings]


def known_variables() -> frozenset[str]:
    names = set(DIRECT | FOREIGN)
    for cls in settings_classes():
        config = cls.model_config
        names.update(_names(cls, config.get("env_prefix") or "", config.get("env_nested_delimiter")))
    return frozenset(name for name in names if name.startswith(PREFIX))


def _dotenv(path: Path) -> dict[str, str | None]:
    from dotenv import dotenv_values  # pydantic-settings' own reader of .env files

    return dict(dotenv_values(path)) if path.is_file() else {}


def unknown_variables(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
) -> list[str]:
    """One line per `V2S_*` name set in the environment or `.env` that no setting reads, with the closest
    known name when there is one."""
    environ = os.environ if environ is None else environ
    seen = {name.upper(): "environment" for name in environ}
    if dotenv is not None:
        seen.update({name.upper(): str(dotenv) for name in _dotenv(dotenv) if name.upper() not in seen})
    known = known_variables()
    lines = []
    for name, where in sorted(seen.items()):
        if not name.startswith(PREFIX) or name in known or name.startswith(FOREIGN_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} (set in the {where}) is not a v2s setting and is ignored{hint}")
    return lines
