"""Model settings, from the environment (prefix V2S_) or a .env file. Secrets are SecretStr: never printed."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from annotator.pricing import Price, PriceTable, Tier, load_price_table


class RateLimit(BaseModel):
    """A provider quota for one model: requests and tokens per window (a minute unless the window is changed)."""

    rpm: int | None = None
    tpm: int | None = None


_GEMINI_KEY = AliasChoices("V2S_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
_OPENAI_KEY = AliasChoices("V2S_OPENAI_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY")
KEY_FIELDS = ("gemini_api_key", "openai_api_key")


class ModelKeys(BaseSettings):
    """The model keys alone. Each process reads them from its own environment (or .env): a job's settings travel
    to its Ray tasks without them, because Ray keeps task arguments in its object store and may log them."""

    model_config = SettingsConfigDict(env_prefix="V2S_", env_file=".env", extra="ignore")

    gemini_api_key: SecretStr | None = Field(default=None, validation_alias=_GEMINI_KEY)
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_OPENAI_KEY)


class ModelSettings(BaseSettings):
    """Which backend and model each stage uses, and how to reach them."""

    model_config = SettingsConfigDict(
        env_prefix="V2S_", env_file=".env", extra="ignore", populate_by_name=True
    )

    gemini_api_key: SecretStr | None = Field(default=None, validation_alias=_GEMINI_KEY)
    gemini_base_url: str | None = None
    gemini_api_version: str = "v1beta"
    vertex_project: str | None = None
    vertex_location: str | None = None

    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_OPENAI_KEY)
    openai_base_url: str = "https://api.deepseek.com/v1"

    plot_backend: Literal["gemini", "openai"] = "gemini"
    # Current models (annotator/data/prices.v1.json says where each was looked up, and which names retired).
    plot_model: str = "gemini-3.8-flash"
    script_backend: Literal["gemini", "openai"] = "gemini"
    script_model: str = "gemini-3.8-flash"
    distill_backend: Literal["gemini", "openai"] = "openai"
    distill_model: str = "deepseek-flash"

    inline_media_max_bytes: int = 15 * 1024 * 1024  # larger proxies go through the Files API
    request_timeout_s: float = 600.0  # per HTTP call; a slower answer counts as a timeout and is retried
    # HTTP attempts of ONE model call (retryable faults). Stage attempts are separate: V2S_STAGE_ATTEMPTS.
    max_attempts: int = Field(default=6, validation_alias=AliasChoices("V2S_CALL_ATTEMPTS", "max_attempts"))
    retry_initial_wait_s: float = 1.0  # exponential backoff with jitter between attempts (Retry-After wins)
    retry_max_wait_s: float = 60.0
    file_active_timeout_s: float = 300.0  # how long an upload may stay PROCESSING before the stage fails
    file_poll_interval_s: float = 1.0
    # Gemini media resolution per stage (plot reasoning may watch at a lower, cheaper resolution).
    plot_media_resolution: Literal["low", "medium", "high"] | None = None
    script_media_resolution: Literal["low", "medium", "high"] | None = None
    # How the openai backend shows a video: sampled JPEG frames (any VLM) or one video_url (vLLM/SGLang).
    openai_video_mode: Literal["frames", "video_url"] = "video_url"
    openai_frame_fps: float = 1.0
    openai_max_frames: int = 32
    # The server's per-prompt image limit (vLLM's --limit-mm-per-prompt image=N; None: not limited here). Frames
    # mode sends at most this many frames; a server that refuses more names this setting (docs/gateway.md).
    openai_max_images: int | None = Field(None, ge=1)
    repair_turns: int = 2
    # Upper bounds: a model's catalog entry lowers max output to what its server accepts, and its recommended
    # temperature (Gemini 3: 1.0) wins unless V2S_TEMPERATURE is set.
    max_output_tokens: int = 32768
    temperature: float = 0.2
    # Quotas per model, e.g. V2S_RATE_LIMITS='{"gemini-3.8-flash": {"rpm": 150, "tpm": 2000000}}'; a model
    # without an entry never waits. Shared by every worker of the Ray cluster (docs/gateway-limits.md).
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    rate_limit_window_s: float = 60.0  # the quota window; only benchmarks and tests shorten it
    response_cache: bool = True  # reuse validated answers stored in the job database (resumes cost nothing)
    # The price and token-rate table (annotator/data/prices.v1.json unless V2S_PRICES_FILE names another);
    # V2S_PRICES='{"gemini-3.8-flash": {"input_per_m": 1.0, ...}}' overrides single models on top of it.
    prices_file: str | None = None
    prices: dict[str, Price] = Field(default_factory=dict)
    # The service tier per stage: standard; flex (Gemini's half-price synchronous tier; it may be slower
    # and shed requests: after `flex_max_sheds` sheds of one call, that call goes on at the standard tier);
    # batch (the provider's asynchronous batch API at half price: the stage's requests of many segments go
    # in one batch job, the plot chain in waves; a backend without batches makes standard calls).
    plot_tier: Literal["standard", "flex", "batch"] = "standard"
    script_tier: Literal["standard", "flex", "batch"] = "standard"
    distill_tier: Literal["standard", "flex", "batch"] = "standard"
    flex_max_sheds: int = Field(2, ge=0)
    flex_request_timeout_s: float = 900.0  # Flex answers in minutes (its documented target: 1–15)
    batch_poll_s: float = Field(30.0, gt=0)  # how often an open batch is asked for its state
    batch_max_items: int = Field(1000, ge=1)  # requests per batch job at most
    batch_rounds: int = Field(3, ge=1)  # batches per item at most: the first, then retries of failed items
    batch_timeout_s: float = Field(26 * 3600.0, gt=0)  # Gemini and OpenAI finish or expire a batch in 24 h
    # after cancelling a batch open past batch_timeout_s, how long to wait for it to end: OpenAI's stays
    # `cancelling` "for up to 10 minutes" before `cancelled`, with the answers it finished in its output file
    batch_cancel_grace_s: float = Field(900.0, ge=0)
    # requests inlined in the create call (Gemini), or sent as a JSONL file through the Files API; auto
    # inlines up to batch_inline_max_bytes (the API's limit for an inlined batch is 20 MB)
    batch_input: Literal["auto", "inline", "file"] = "auto"
    batch_inline_max_bytes: int = Field(16 * 1024 * 1024, ge=1)

    # Explicit context caching of a segment's video between its plot and script calls (Gemini, same model
    # and resolution for both, clip above the model's smallest cache): made before the plot, read by both,
    # deleted when the script is final; the TTL only bounds a cache whose script never comes.
    context_cache: bool = False
    context_cache_ttl_s: float = Field(300.0, gt=0)
    # How long a batch-tier stage's request may wait in its batch before it is answered: Gemini's Batch API
    # targets 24 h ("results within 24 hours"). A cache read by a batch-tier stage must live that long, else
    # the items meet a cache that has expired; with a shorter TTL those stages send the video instead.
    batch_expected_wait_s: float = Field(24 * 3600.0, gt=0)

    def without_keys(self) -> ModelSettings:
        """These settings as a job hands them to its tasks: everything but the keys."""
        return self.model_copy(update=dict.fromkeys(KEY_FIELDS))

    def with_keys(self, keys: ModelKeys) -> ModelSettings:
        return self.model_copy(update={name: getattr(keys, name) for name in KEY_FIELDS})

    def price_table(self) -> PriceTable:
        return load_price_table(self.prices_file)

    def price(self, model: str) -> Price:
        """The model's price; one in neither V2S_PRICES nor the table is refused by preflight."""
        catalog = self.price_table().price(model)
        return catalog.merged(self.prices[model]) if model in self.prices else catalog

    def priced(self, model: str) -> bool:
        return model in self.prices or self.price_table().known(model)

    def max_output_for(self, model: str) -> int:
        """V2S_MAX_OUTPUT_TOKENS, lowered to the largest the model's server accepts (a larger value is a 400)."""
        limit = self.price(model).max_output_tokens
        return min(self.max_output_tokens, limit) if limit else self.max_output_tokens

    def temperature_for(self, model: str) -> float:
        """V2S_TEMPERATURE when set, else the provider's recommendation for the model, else the default."""
        recommended = self.price(model).temperature
        if "temperature" in self.model_fields_set or recommended is None:
            return self.temperature
        return recommended

    def thinking_for(self, model: str) -> str | int | None:
        """The thinking level or budget v2s sends for the model (None: the model's own default)."""
        thinking = self.price(model).thinking
        return thinking.default if thinking is not None else None

    def tier(self, stage: str) -> Tier:
        return getattr(self, f"{stage}_tier", "standard")

    def call_tier(self, stage: str) -> Tier:
        """The tier of a synchronous call of the stage: a batch-tier stage's own calls (a fallback, a repair
        outside a batch) are standard calls."""
        tier = self.tier(stage)
        return "standard" if tier == "batch" else tier
