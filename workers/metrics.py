"""Ray metrics of a run (ray.util.metrics): they reach the Ray dashboard's Metrics page and Prometheus through
each node's metrics agent, named `ray_v2s_*` there.

Recorded by the tasks as each stage ends, so a cluster-wide view exists without asking the database:
- v2s_segments_total{stage, status}      stages finished, by outcome (done, failed, rejected)
- v2s_model_calls_total{stage}           stages that made a model call (with the gateway's retries inside)
- v2s_tokens_total{stage, direction}     input / output tokens
- v2s_cost_usd_total{stage}              estimated cost
- v2s_videos_total{status}               videos prepared (split) or failed

Metric objects are created once per worker process (lazily: ray.util.metrics needs a connected Ray).
A metric that cannot be recorded never fails the stage: the database stays the source of truth.
"""

from __future__ import annotations

import logging
from functools import cache

log = logging.getLogger(__name__)


@cache
def _metrics() -> dict:
    from ray.util.metrics import Counter

    return {
        "segments": Counter(
            "v2s_segments_total", "segment stages finished, by stage and status", ("stage", "status")
        ),
        "calls": Counter("v2s_model_calls_total", "stages that called a model", ("stage",)),
        "tokens": Counter("v2s_tokens_total", "model tokens by stage and direction", ("stage", "direction")),
        "cost": Counter("v2s_cost_usd_total", "estimated model cost in USD", ("stage",)),
        "videos": Counter("v2s_videos_total", "videos prepared or failed", ("status",)),
    }


def record_stage(stage: str, status: str, usage=None) -> None:
    """One stage of one segment ended with `status`; `usage` is its StageUsage when a model was called."""
    try:
        m = _metrics()
        m["segments"].inc(1, {"stage": stage, "status": status})
        if usage is not None:
            m["calls"].inc(1, {"stage": stage})
            if usage.input_tokens:
                m["tokens"].inc(usage.input_tokens, {"stage": stage, "direction": "input"})
            if usage.output_tokens:
                m["tokens"].inc(usage.output_tokens, {"stage": stage, "direction": "output"})
            if usage.cost_usd:
                m["cost"].inc(usage.cost_usd, {"stage": stage})
    except Exception as exc:  # metrics are a view; never let them fail a stage
        log.debug("metric not recorded: %s", exc)


def record_video(status: str) -> None:
    try:
        _metrics()["videos"].inc(1, {"status": status})
    except Exception as exc:
        log.debug("metric not recorded: %s", exc)
