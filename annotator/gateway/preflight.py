"""Before anything is split or paid for: every stage's model is served under its name and has a price.

A retired name, a model the catalog cannot price (it would be billed $0 in every report) or a name the server
does not list each stop the job with one line naming the stage, the model and the fix (ModelCallError with
outcome "config", which `v2s run` prints and exits 2 on)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from annotator.gateway.base import ModelCallError
from annotator.settings import ModelSettings

log = logging.getLogger(__name__)

STAGES = ("plot", "script", "distill")


def stage_models(settings: ModelSettings) -> list[tuple[str, str, str]]:
    """(stage, backend, model) of every stage."""
    return [(s, getattr(settings, f"{s}_backend"), getattr(settings, f"{s}_model")) for s in STAGES]


def check_catalog(settings: ModelSettings) -> None:
    """The checks that need no network: retired names and unpriced models (refused), and prices past an
    announced change (a warning: the run is billed at the new price, the reports would say the old one)."""
    table = settings.price_table()
    today = datetime.now(UTC).date().isoformat()
    for stage, _, model in stage_models(settings):
        variable = f"V2S_{stage.upper()}_MODEL"
        replacement = table.retired.get(model)
        if replacement is not None:
            raise ModelCallError(
                f"{stage}: model {model} was retired by its provider; set {variable}={replacement}",
                outcome="config",
            )
        if not settings.priced(model):
            raise ModelCallError(
                f"{stage}: model {model} has no price in the catalog ({table.version}); choose one of "
                f"{', '.join(sorted(table.models))} or price it: "
                f'V2S_PRICES=\'{{"{model}": {{"input_per_m": …, "output_per_m": …}}}}\'',
                outcome="config",
            )
        until = settings.price(model).valid_until
        if until is not None and until < today:
            log.warning(
                "%s: the catalog's price of %s was announced to change after %s; update the price table "
                "(V2S_PRICES_FILE) or V2S_PRICES",
                stage,
                model,
                until,
            )
