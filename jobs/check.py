"""`v2s check`, also run by `run`, `plan` and (its free part) `submit` before anything is split.

Per stage (plot, script, distill), cheapest first, stopping at the first failure:

1. the catalog (no network): a retired name, a model without a price (annotator/gateway/preflight.py);
2. access (free calls): the key works and the server serves the name (Gemini models.get, GET /models);
3. one tiny structured call per stage schema (paid, a fraction of a cent): the stage's real request shape —
   response schema, JSON mode, thinking, output budget — is accepted, and the answer's model version is the
   model asked for (an alias or a deprecated name served by another model is a failure naming what serves it).

A failure is a ModelCallError (outcome "config", or "auth" for a key) whose one-line message names the stage,
the model and the fix; the CLI prints it and exits 2. The calls go to the backends directly, never through
the response cache, so a check leaves nothing a later stage could be answered from.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from annotator.gateway.base import ModelCallError
from annotator.gateway.preflight import StageCheck, check_catalog, probe, stage_models, stage_schemas
from annotator.settings import ModelSettings

log = logging.getLogger(__name__)


class CheckReport(BaseModel):
    stages: list[StageCheck]  # one per stage schema (none when the calls were not made)
    price_table: str  # the catalog's version the prices come from
    calls: bool  # whether the tiny structured calls were made
    warnings: list[str] = []  # what the job will lack, though nothing failed (vision_only_warnings)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages)

    @property
    def unchecked(self) -> list[StageCheck]:
        return [s for s in self.stages if s.outcome == "unchecked"]

    def summary(self) -> str:
        """One line for `run` and `plan`: what was checked and what it cost."""
        if not self.calls:
            return "models checked: catalog and access (no check calls made)"
        stages = ", ".join(dict.fromkeys(s.stage for s in self.stages))
        return (
            f"models checked: {stages} ({len(self.stages)} check calls, ${self.cost_usd:.6f}"
            + (f"; {len(self.unchecked)} not checked" if self.unchecked else "")
            + ")"
        )


def check_models(settings: ModelSettings, *, calls: bool = True) -> CheckReport:
    """The whole check; ModelCallError at the first failure (see the module's docstring)."""
    from annotator.gateway import Gateway

    check_catalog(settings)
    gateway = Gateway(settings)  # no response cache: check answers are never stored
    check_access(settings, gateway)
    report = CheckReport(
        stages=[],
        price_table=settings.price_table().version,
        calls=calls,
        warnings=vision_only_warnings(settings),
    )
    if not calls:
        return report
    asks = [
        (stage, backend, model, schema)
        for stage, backend, model in stage_models(settings)
        for schema in stage_schemas()[stage]
    ]
    # in parallel: against a real provider each call is seconds of thinking; the order of the report is kept
    with ThreadPoolExecutor(max_workers=len(asks), thread_name_prefix="v2s-check") as pool:
        found = list(pool.map(lambda a: probe(gateway.backend(a[1]), settings, a[0], a[2], a[3]), asks))
    report = report.model_copy(update={"stages": found})
    failed = next((s for s in found if s.outcome == "failed"), None)
    if failed is not None:
        raise ModelCallError(failed.problem, outcome="config")
    for s in report.unchecked:
        log.warning("%s (%s, %s): %s", s.stage, s.model, s.schema_name, s.problem)
    return report


def check_access(settings: ModelSettings, gateway=None) -> None:
    """One free authenticated call per (backend, model): the key works and the name is served.

    A missing or refused key raises ModelCallError outcome "auth"; an unserved model outcome "config", naming
    the stage and the fix. Anything else (a 429, an outage) is left to the stages' own retries."""
    from annotator.gateway import Gateway

    gateway = gateway or Gateway(settings)
    checked: set[tuple[str, str]] = set()
    for stage, backend, model in stage_models(settings):
        if (backend, model) in checked:
            continue
        checked.add((backend, model))
        try:
            gateway.backend(backend).check_access(model)
        except ModelCallError as exc:
            if exc.outcome == "config":
                raise ModelCallError(
                    f"{stage}: {exc}; set V2S_{stage.upper()}_MODEL to a model it serves", outcome="config"
                ) from None
            if exc.outcome == "auth":
                raise
            log.warning("could not check access to %s: %s", backend, exc)


def vision_only_warnings(settings: ModelSettings) -> list[str]:
    """The video stages on the openai backend, which send the clip's pictures only (a video_url's sound is
    dropped by the server's video processor; frames are JPEGs): their dialogue, names said aloud and sound cues
    can only come from what the pictures show. One line, said once per job (check, run, plan)."""
    from annotator.gateway.check_clip import CLIP_STAGES

    stages = [
        f"{s} ({m})" for s, backend, m in stage_models(settings) if backend == "openai" and s in CLIP_STAGES
    ]
    if not stages:
        return []
    return [
        f"{', '.join(stages)} on the OpenAI-compatible server: the clip goes as pictures only "
        f"(V2S_OPENAI_VIDEO_MODE={settings.openai_video_mode}, no sound), so dialogue, names said aloud and "
        "sound cues come only from what the pictures show; use the gemini backend for these stages if "
        "dialogue matters (docs/gateway.md)"
    ]
