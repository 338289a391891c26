"""The service tier of one model call, and Flex's fallback to the standard tier when it keeps being shed.

Flex is best-effort: a busy provider sheds its requests (429 or 503). A shed is retried like any throttling;
after `max_sheds` of them the call goes on at the standard tier, so a chain is slowed, never stopped, by Flex.
"""

from __future__ import annotations

import logging
import re

from annotator.gateway.base import Backend, ModelCallError, ModelRequest, ModelResponse, RetryableError
from annotator.pricing import Tier

log = logging.getLogger(__name__)
SHED_OUTCOMES = ("rate_limited", "server_error")
# a model that takes no Flex: Google answers 400 "Flex API is not supported for model: …" (vercel/ai#19833)
FLEX_REFUSED = re.compile(r"flex\b.*\bnot supported", re.IGNORECASE)


class TierFallback:
    """Sends each attempt of a call at the current tier; counts Flex sheds and steps down when they run out."""

    def __init__(self, tier: Tier, max_sheds: int) -> None:
        self.tier: Tier = tier
        self.max_sheds = max_sheds
        self.sheds = 0

    def generate(self, backend: Backend, request: ModelRequest) -> ModelResponse:
        try:
            return backend.generate(request.model_copy(update={"tier": self.tier}))
        except RetryableError as exc:
            if self.tier == "flex" and exc.outcome in SHED_OUTCOMES:
                self.sheds += 1
                if self.sheds >= self.max_sheds:
                    log.warning(
                        "%s (%s): Flex shed the call %d times; going on at the standard tier",
                        request.stage,
                        request.model,
                        self.sheds,
                    )
                    self.tier = "standard"
                    exc.retry_after_s = 0.0  # the standard tier is not the one that is busy
            raise
        except ModelCallError as exc:
            if self.tier != "flex" or not FLEX_REFUSED.search(str(exc)):
                raise
            log.warning(
                "%s (%s): the model takes no Flex; going on at the standard tier",
                request.stage,
                request.model,
            )
            self.tier = "standard"
            return backend.generate(request.model_copy(update={"tier": self.tier}))
