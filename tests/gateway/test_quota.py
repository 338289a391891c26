"""Gemini's 429s over the real SDK: the wait is in the body (google.rpc.RetryInfo.retryDelay, no Retry-After
header) and is honoured, measured by when the simulator received each attempt; a spent per-day quota
(QuotaFailure …PerDay…) fails the stage at once with a clear reason, and later calls of that model are not
even sent."""

from __future__ import annotations

from itertools import pairwise

from annotator.gateway import Gateway, Media
from annotator.simulator.server import SimulatorServer
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import MODELS, settings_for
from tests.support.recording import Recording
from workers.storage import file_sha256

DELAY_S = 0.2


def segment(proxy) -> SegmentInput:
    return SegmentInput(index=1, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy)))


def test_the_retry_delay_in_a_429_body_is_waited(play, proxy):
    scenario = Recording.of("rate_limit_retry_info@plot:2")
    scenario.rules[0].retry_delay_s = DELAY_S
    with SimulatorServer(play, behaviours=scenario) as server:
        # backoff alone would wait 0.01–0.05 s (settings_for): only the body's 0.2 s makes the gaps longer
        gateway = Gateway(settings_for(server))
        result = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"]).reason(segment(proxy), None)
        statuses = [r.status for r in server.requests if r.endpoint == "generateContent"]
    assert result.ok, result.error
    assert statuses == [429, 429, 200]
    arrived = [info.received_s for info in scenario.seen]
    assert all(later - earlier >= DELAY_S for earlier, later in pairwise(arrived))


def test_a_spent_daily_quota_fails_the_stage_without_burning_attempts(play, proxy):
    scenario = Recording.of("daily_quota@plot")
    scenario.rules[0].retry_delay_s = DELAY_S
    with SimulatorServer(play, behaviours=scenario) as server:
        gateway = Gateway(settings_for(server))
        reasoner = PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"])
        first = reasoner.reason(segment(proxy), None)
        again = reasoner.reason(segment(proxy), None)  # the next segment of the stage
        calls = server.request_count()
    assert (first.outcome, again.outcome) == ("quota", "quota")
    assert (
        "daily quota exhausted" in first.error and "GenerateRequestsPerDayPerProjectPerModel" in first.error
    )
    assert calls == 1  # one 429, no retries, and the stage's next call is not sent
