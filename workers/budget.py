"""A job's budget: the caps, and what one model call may cost at most (its *bound*).

The scheduler (workers/scheduler.py) reserves a task's bound before the task starts, and lets it start only
when what the job has spent (the database's recorded usage) plus the bounds of the tasks in flight plus this
one stay within `limit_usd`. A finished task's reservation is released and its real cost is read back from the
database, so the budget is used up by what was paid, not by the bounds.

Why a bound and not the plan's expected cost: an expectation is passed half the time. The bound of a call is
its input — the segment's video at the price table's documented token rates plus a text allowance for the
prompt and what it quotes (character context, synopsis; the distillation quotes the plot and script answers,
each at most its output cap) — plus the whole output cap the request asks for (V2S_MAX_OUTPUT_TOKENS, lowered
to the model's; thinking tokens are output). A call cannot be billed more output than it asked for, so a call
that fits its bound cannot push the job past its budget. What the bound does not cover: repair turns of a call
already under way (at most V2S_REPAIR_TURNS more calls, made by the gateway inside the stage) — those, and
only those, can take spending past the budget; the per-segment ceiling (`segment_limit_usd`) stops a segment
that keeps costing.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from annotator.pricing import Tier
from annotator.settings import ModelSettings
from profiles_db.stages import Stage

# Text tokens of a request beyond its video: the prompt template, the character context (the job's
# context_token_budget, 4000 by default) and the synopsis. The sample film's prompts measure ~2,500; the
# allowance is generous on purpose, as the input must not be under-counted.
TEXT_ALLOWANCE = {Stage.PLOT: 8000, Stage.SCRIPT: 8000, Stage.DISTILL: 4000}
VIDEO_STAGES = (Stage.PLOT, Stage.SCRIPT)


class Budget(BaseModel):
    """The caps of one job (None: no cap). Both are totals in US dollars over every run of the job."""

    limit_usd: float | None = Field(None, gt=0)  # --budget-usd: the job's whole spend
    segment_limit_usd: float | None = Field(None, gt=0)  # --segment-budget-usd: one segment's spend

    @property
    def active(self) -> bool:
        return self.limit_usd is not None or self.segment_limit_usd is not None


def call_bound(
    settings: ModelSettings,
    stage: Stage,
    seconds: float,
    has_audio: bool,
    tier: Tier | None = None,
    context_tokens: int = 4000,
) -> float:
    """The most one call of `stage` on a segment of `seconds` can cost (see the module docstring)."""
    model = getattr(settings, f"{stage}_model")
    table = settings.price_table()
    video = 0
    if stage in VIDEO_STAGES:
        resolution = getattr(settings, f"{stage}_media_resolution", None)
        video = table.media.video_tokens(seconds, has_audio=has_audio, resolution=resolution)
    text = TEXT_ALLOWANCE[stage] + (context_tokens if stage != Stage.DISTILL else 0)
    if stage == Stage.DISTILL:  # it quotes the plot's and the script's answers
        text += settings.max_output_for(settings.plot_model) + settings.max_output_for(settings.script_model)
    output = settings.max_output_for(model)
    return settings.price(model).cost(video + text, output, tier or settings.call_tier(stage))
