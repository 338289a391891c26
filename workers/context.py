"""What every Ray task of a run needs to know, and the per-process handles built from it."""

from __future__ import annotations

import hashlib
from functools import cache

from pydantic import BaseModel

from annotator import prompting
from annotator.gateway import Gateway
from annotator.settings import ModelSettings
from annotator.stages import PROMPT_FILES
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.stages import StageSettings, StageStore
from workers.budget import Budget
from workers.splitter.settings import ProxySettings


class VideoSource(BaseModel):
    uri: str
    local_path: str
    video_id: str
    scope: str | None = None  # series name; None = the video is its own scope
    episode: int | None = None


class RunContext(BaseModel):
    job_id: str
    db_url: str
    out_dir: str
    max_segment_s: float = 300.0
    context_token_budget: int = 4000
    max_in_flight: int = 8
    shard_max_records: int = 1000
    stages: StageSettings = StageSettings()  # leases and attempts: the job read them once (jobs.settings)
    budget: Budget = Budget()  # the job's caps; the driver's scheduler applies them (workers/scheduler.py)

    def pipeline_version(self, settings: ModelSettings, proxy: ProxySettings) -> str:
        """Changes whenever anything that shapes an answer changes (each stage's backend, model, prompt
        templates' content, temperature, thinking, media resolution; the segments and the proxy's size and
        fps), so records of a changed pipeline get new ids and are annotated again."""
        parts = [*(stage_shape(settings, stage) for stage in PROMPT_FILES)]
        parts += [f"seg:{self.max_segment_s}", f"proxy:{proxy.height}p@{proxy.fps}fps"]
        return "p2-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]


def stage_shape(settings: ModelSettings, stage: str) -> str:
    """What of the settings and prompts decides one stage's answers."""
    model = getattr(settings, f"{stage}_model")
    prompts = ",".join(f"{name}.v{v}={prompting.template_digest(name, v)}" for name, v in PROMPT_FILES[stage])
    return (
        f"{stage}:{getattr(settings, f'{stage}_backend')}/{model}/{prompts}"
        f"/t={settings.temperature_for(model)}/think={settings.thinking_for(model)}"
        f"/res={getattr(settings, f'{stage}_media_resolution', None)}"
    )


@cache
def database(url: str) -> Database:
    return Database(url)


@cache
def gateway(db_url: str | None = None) -> Gateway:
    """This process's gateway: limits shared across the cluster when Ray is up, answers cached in the job
    database when `db_url` is given (a resumed job then never asks twice), no call made by a worker whose raylet
    is gone (workers/orphans.py)."""
    import ray

    from profiles_db.response_cache import DatabaseResponseCache
    from workers.orphans import raylet_guard
    from workers.rate_limiter import ClusterRateLimiter

    settings = ModelSettings()
    limiter = (
        ClusterRateLimiter(settings.rate_limits, window_s=settings.rate_limit_window_s)
        if ray.is_initialized()
        else None
    )
    cache = DatabaseResponseCache(database(db_url)) if db_url else None
    return Gateway(settings, limiter=limiter, cache=cache, guard=raylet_guard())


def store(ctx: RunContext) -> StageStore:
    return StageStore(database(ctx.db_url), ctx.stages)


def cpm(ctx: RunContext) -> CharacterProfileManager:
    return CharacterProfileManager(database(ctx.db_url))
