"""Model settings, from the environment (prefix V2S_) or a .env file. Secrets are SecretStr: never printed."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Price(BaseModel):
    """USD per million tokens."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000


DEFAULT_PRICES = {
    "gemini-2.5-pro": Price(input_per_m=1.25, output_per_m=10.0),
    "gemini-2.5-flash": Price(input_per_m=0.30, output_per_m=2.50),
    "deepseek-chat": Price(input_per_m=0.27, output_per_m=1.10),
    "deepseek-reasoner": Price(input_per_m=0.55, output_per_m=2.19),
}


class ModelSettings(BaseSettings):
    """Which backend and model each stage uses, and how to reach them."""

    model_config = SettingsConfigDict(env_prefix="V2S_", env_file=".env", extra="ignore")

    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("V2S_GEMINI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    gemini_base_url: str | None = None
    gemini_api_version: str = "v1beta"
    vertex_project: str | None = None
    vertex_location: str | None = None

    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("V2S_OPENAI_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY"),
    )
    openai_base_url: str = "https://api.deepseek.com/v1"

    plot_backend: Literal["gemini", "openai"] = "gemini"
    plot_model: str = "gemini-2.5-pro"
    script_backend: Literal["gemini", "openai"] = "gemini"
    script_model: str = "gemini-2.5-pro"
    distill_backend: Literal["gemini", "openai"] = "openai"
    distill_model: str = "deepseek-chat"

    inline_media_max_bytes: int = 15 * 1024 * 1024  # larger proxies go through the Files API
    request_timeout_s: float = 600.0
    max_attempts: int = 6
    repair_turns: int = 2
    max_output_tokens: int = 32768
    temperature: float = 0.2
    prices: dict[str, Price] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    def price(self, model: str) -> Price:
        return self.prices.get(model, Price())
