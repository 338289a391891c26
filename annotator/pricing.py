"""Prices and token rates as data: `annotator/data/prices.v1.json`, or a file of the user's (V2S_PRICES_FILE).

Dollars per million tokens at the standard tier, a multiplier per cheaper tier (Flex and Batch are half price
on Gemini), the cached-input price and the storage price of an explicit cache, and the documented token rates
of video (tokens per sampled frame at each media resolution, tokens per second of audio) that `v2s plan`
estimates with. One table serves the cost accounting of every call and the plan, so the two cannot disagree.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

Tier = Literal["standard", "flex", "batch"]
TIERS: tuple[Tier, ...] = ("standard", "flex", "batch")


class Thinking(BaseModel):
    """How a model's thinking is set, as its provider documents it: Gemini 3.x by level, Gemini 2.5 by token
    budget. `default` is what v2s sends; a repair after an answer that thinking cut off sends one step less."""

    control: Literal["level", "budget"]
    levels: list[str] = Field(default_factory=list)  # "level": the accepted levels, least thinking first
    default: str | int | None = None  # a level, or a budget in tokens
    min_budget: int = 0  # "budget": the smallest non-zero budget the model accepts

    def lower(self, current: str | int | None) -> str | int | None:
        """One step less thinking than `current` (None when it cannot go lower)."""
        if self.control == "level":
            rank = self.levels.index(str(current)) if str(current) in self.levels else len(self.levels)
            return self.levels[rank - 1] if rank > 0 else None
        budget = int(current) if isinstance(current, int) else 0
        return max(self.min_budget, budget // 2) if budget > self.min_budget else None


class Price(BaseModel):
    """USD per million tokens at the standard tier, and what the other tiers and caching change."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0
    cached_input_per_m: float | None = None  # None: the model has no discount for cached input
    cache_storage_per_m_hour: float = 0.0  # an explicit cache, per million tokens held per hour
    min_cache_tokens: int = 0  # the smallest explicit cache the model accepts (0: caching unsupported)
    tiers: dict[str, float] = Field(default_factory=dict)  # tier → multiplier on every token price
    # What the provider documents for the model (None: not in the catalog, the settings decide).
    max_output_tokens: int | None = None  # the largest max_tokens / maxOutputTokens the server accepts
    context_window: int | None = None  # input + output tokens
    thinking: Thinking | None = None
    temperature: float | None = None  # the provider's recommended temperature (Gemini 3: 1.0, lower can loop)
    # An OpenAI reasoning model (o-series, gpt-5 family): it takes `max_completion_tokens`, refuses `max_tokens`,
    # and refuses any temperature but its default. False (any model the catalog does not mark, so any unknown
    # model on an OpenAI-compatible server): `max_tokens` and `temperature`, as DeepSeek, vLLM, SGLang and
    # Ollama take them. A user marks another one with V2S_PRICES='{"o4-mini": {"openai_reasoning": true, …}}'.
    openai_reasoning: bool = False
    # v2s's planning assumption, not the provider's: thinking tokens per answer token at the thinking v2s sends
    # (None: the model does not think). `v2s plan` uses it until finished runs measured the real ratio.
    assumed_thinking_ratio: float | None = None
    valid_until: str | None = None  # an announced price change (ISO date): the price is stale after it

    def merged(self, other: Price) -> Price:
        """`other`'s fields where it sets them, ours elsewhere (a user's price keeps the catalog's limits)."""
        return Price.model_validate({**self.model_dump(), **other.model_dump(exclude_unset=True)})

    def multiplier(self, tier: Tier) -> float:
        return 1.0 if tier == "standard" else self.tiers.get(tier, 1.0)

    def cost(
        self, input_tokens: int, output_tokens: int, tier: Tier = "standard", cached_tokens: int = 0
    ) -> float:
        """Dollars of one call: `cached_tokens` of the input were read from a cache (counted in input_tokens,
        as Gemini's promptTokenCount includes cachedContentTokenCount)."""
        cached = min(cached_tokens, input_tokens)
        cached_price = self.input_per_m if self.cached_input_per_m is None else self.cached_input_per_m
        per_m = (
            (input_tokens - cached) * self.input_per_m
            + cached * cached_price
            + output_tokens * self.output_per_m
        )
        return per_m * self.multiplier(tier) / 1_000_000

    def cost_of(self, response) -> float:
        """Dollars of one answer (a ModelResponse: its tokens, cached tokens and the tier it was served at)."""
        return self.cost(response.input_tokens, response.output_tokens, response.tier, response.cached_tokens)

    def storage_cost(self, tokens: int, seconds: float) -> float:
        return tokens * self.cache_storage_per_m_hour * seconds / 3600 / 1_000_000


class MediaRates(BaseModel):
    """How many prompt tokens a second of video costs (Gemini's documented rates)."""

    frame_tokens: dict[str, int] = Field(default_factory=lambda: {"low": 66, "medium": 258, "high": 258})
    audio_tokens_per_s: int = 32
    default_fps: float = 1.0

    def video_tokens(
        self, seconds: float, *, has_audio: bool, fps: float | None = None, resolution: str | None = None
    ) -> int:
        frames = math.ceil(max(0.0, seconds) * (fps or self.default_fps))
        per_frame = self.frame_tokens.get(resolution or "medium", self.frame_tokens["medium"])
        audio = math.ceil(seconds * self.audio_tokens_per_s) if has_audio and seconds > 0 else 0
        return frames * per_frame + audio


class PriceTable(BaseModel):
    version: str
    source: str = ""
    media: MediaRates = Field(default_factory=MediaRates)
    models: dict[str, Price]
    # Model names the providers stopped serving, with the model that replaces each (what preflight names).
    retired: dict[str, str] = Field(default_factory=dict)

    def price(self, model: str) -> Price:
        """The model's price; an unknown model costs nothing here, which is why preflight refuses it
        (`known`) unless the user prices it (V2S_PRICES)."""
        return self.models.get(model, Price())

    def known(self, model: str) -> bool:
        return model in self.models


class PriceTableError(ValueError):
    pass


BUNDLED = Path(__file__).parent / "data" / "prices.v1.json"


@cache
def _bundled() -> PriceTable:
    return PriceTable.model_validate_json(BUNDLED.read_text())


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The bundled table, or the file at `path` (the same shape; models it leaves out keep the bundled price)."""
    bundled = _bundled()
    if path is None:
        return bundled
    try:
        data = json.loads(Path(path).read_text())
        table = PriceTable.model_validate(data)
    except (OSError, ValueError) as exc:
        raise PriceTableError(
            f"{path}: not a price table ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    models = {**bundled.models, **{m: bundled.price(m).merged(p) for m, p in table.models.items()}}
    return table.model_copy(update={"models": models, "retired": {**bundled.retired, **table.retired}})
