"""Model settings that point both backends at a simulator, with fast retries, and one-rule fault scenarios."""

from __future__ import annotations

from annotator.settings import ModelSettings
from annotator.simulator.scenarios import Scenario
from annotator.simulator.server import SimulatorServer

KEY = "sim-faults-key"
MODELS = {"gemini": "gemini-3.8-flash", "openai": "v2s-sim"}


def settings_for(server: SimulatorServer, **overrides) -> ModelSettings:
    """Fast retries (small backoff) instead of mocks; both backends point at the simulator."""
    values = {
        "V2S_GEMINI_API_KEY": KEY,
        "V2S_OPENAI_API_KEY": KEY,
        "gemini_base_url": server.base_url,
        "openai_base_url": server.base_url + "/v1",
        "max_attempts": 3,
        "repair_turns": 1,
        "retry_initial_wait_s": 0.01,
        "retry_max_wait_s": 0.05,
        "request_timeout_s": 5.0,
        **overrides,
    }
    return ModelSettings(_env_file=None, **values)


def fast_scenario(flag: str) -> Scenario:
    scenario = Scenario.from_flags([flag])
    scenario.rules[0].retry_after_s = 0  # Retry-After: 0, so the test does not wait
    return scenario
