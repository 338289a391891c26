"""What every Ray task of a run needs to know, and the per-process handles built from it."""

from __future__ import annotations

import hashlib
import threading
from functools import cache

from pydantic import BaseModel

from annotator import prompting
from annotator.gateway import Gateway
from annotator.settings import ModelKeys, ModelSettings
from annotator.stages import PROMPT_FILES
from profiles_db.cpm import CharacterProfileManager
from profiles_db.db import Database
from profiles_db.outage import Patience
from profiles_db.stages import StageSettings, StageStore
from workers.budget import Budget
from workers.splitter.settings import SplitSettings


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
    # Read once by the process that starts the job and handed to every task, so a worker never reads its own
    # environment for them (a cluster's workers have theirs; a long-lived local Ray serves many jobs). The
    # model keys are not in here: each process reads them itself (ModelKeys).
    models: ModelSettings
    split: SplitSettings
    budget: Budget = Budget()  # the job's caps; the driver's scheduler applies them (workers/scheduler.py)
    outage_wait_s: float = 600.0  # how long every part of the run waits out a database outage (outage.py)

    def pipeline_version(self) -> str:
        """Changes whenever anything that shapes an answer changes (each stage's backend, model, prompt
        templates' content, temperature, thinking, media resolution; the segments and the proxy's size and
        fps), so records of a changed pipeline get new ids and are annotated again."""
        proxy = self.split.proxy
        parts = [*(stage_shape(self.models, stage) for stage in PROMPT_FILES)]
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


_gateways: dict[tuple[str, str], Gateway] = {}
_gateways_lock = threading.Lock()


def gateway(ctx: RunContext) -> Gateway:
    """This process's gateway for the run's database and model settings (one per pair: a worker may serve
    several jobs), with the keys this process reads itself."""
    key = (ctx.db_url, ctx.models.model_dump_json())
    with _gateways_lock:
        if key not in _gateways:
            _gateways[key] = _new_gateway(ctx.db_url, ctx.models.with_keys(ModelKeys()))
        return _gateways[key]


def _new_gateway(db_url: str, settings: ModelSettings) -> Gateway:
    """Limits shared across the cluster when Ray is up, answers cached in the job database (a resumed job then
    never asks twice; what it cannot take waits in a local journal), no call made by a worker whose raylet is
    gone (workers/orphans.py)."""
    import ray

    from profiles_db.answer_journal import AnswerJournal
    from profiles_db.response_cache import DatabaseResponseCache
    from workers.orphans import raylet_guard
    from workers.rate_limiter import ClusterRateLimiter
    from workers.storage import cache_root

    limiter = (
        ClusterRateLimiter(settings.rate_limits, window_s=settings.rate_limit_window_s)
        if ray.is_initialized()
        else None
    )
    # answers paid while the database is away wait on this machine's disk (named by a hash: URLs hold passwords)
    journal = AnswerJournal(cache_root() / "journal" / hashlib.sha256(db_url.encode()).hexdigest()[:16])
    cache = DatabaseResponseCache(database(db_url), journal)
    return Gateway(settings, limiter=limiter, cache=cache, guard=raylet_guard())


def store(ctx: RunContext) -> StageStore:
    return StageStore(database(ctx.db_url), ctx.stages)


def patience(ctx: RunContext) -> Patience:
    """How this run waits out its database's outages (profiles_db/outage.py)."""
    return Patience(ctx.db_url, ctx.outage_wait_s)


def cpm(ctx: RunContext) -> CharacterProfileManager:
    return CharacterProfileManager(database(ctx.db_url))
