"""How the simulator plays Gemini's Flex tier (and OpenAI's `service_tier: flex`).

Flex is the half-price synchronous tier: answers come later than at the standard tier and, when the provider
is busy, a request is shed with a 503 (or a 429) that the caller retries or sends at the standard tier. Here a
Flex answer waits `delay_s` more, and every `shed_every`-th Flex request is shed (0: none), deterministically,
so a test knows how many sheds a run meets. Answers say which tier served them: Gemini's
`usageMetadata.trafficType` (ON_DEMAND_FLEX / ON_DEMAND), OpenAI's `service_tier`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from annotator.simulator.errors import SimError

FLEX = "flex"


@dataclass
class FlexPlay:
    delay_s: float = 0.0
    shed_every: int = 0
    shed_status: int = 503
    # the models that take Flex (None: all); another answers 400 "Flex API is not supported for model: …", as
    # reported of Google's endpoints (vercel/ai#19833)
    models: frozenset[str] | None = None
    requests: int = 0  # Flex requests seen so far
    sheds: int = 0  # of them, shed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, model: str) -> float:
        """Count a Flex request: SimError when the model takes no Flex or the request is shed, else the extra
        seconds its answer takes."""
        if self.models is not None and model not in self.models:
            raise SimError(400, f"Flex API is not supported for model: {model}.")
        with self._lock:
            self.requests += 1
            shed = self.shed_every > 0 and self.requests % self.shed_every == 0
            if shed:
                self.sheds += 1
        if shed:
            raise SimError(
                self.shed_status,
                "The Flex tier has no capacity for this request right now; retry later or use the standard tier.",
            )
        return self.delay_s
