"""The engine's settings, read from the environment (prefix V2S_) or a .env file once, at the top.

Every part owns the shape of its settings; this is the one place that reads them, and from here they are
passed in explicitly: the stage store's leases and attempts travel to every Ray worker inside the run context,
the output lease to the runner, the database URL to the CLI. Two kinds are read where they are used, on
purpose: model settings and keys (`annotator.settings.ModelSettings`), because secrets must not travel in
task arguments, and bucket endpoints (`workers.storage.StorageSettings`), which each process needs for
every URI it opens. A submitted job's workers get the same environment through its runtime_env.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from profiles_db.stages import StageSettings

_STAGE_DEFAULTS = StageSettings()
# Where Ray's own `ray job submit` finds the cluster when --address is not given, in this order (read by
# `v2s submit` through its option, as Ray's CLI does; the runner reads RAY_ADDRESS on its own, as the
# supervisor of a submitted job sets it)
RAY_ADDRESS_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="V2S_", env_file=".env", extra="ignore")

    database_url: str | None = None  # V2S_DATABASE_URL: the job database when no --database-url is given
    lease_s: float = Field(_STAGE_DEFAULTS.lease_s, gt=0)  # V2S_LEASE_S
    stage_attempts: int = Field(_STAGE_DEFAULTS.stage_attempts, ge=1)  # V2S_STAGE_ATTEMPTS
    output_lease_s: float = Field(60.0, gt=0)  # V2S_OUTPUT_LEASE_S; its heartbeat renews it every third
    # V2S_MAX_IN_FLIGHT: tasks the driver keeps submitted at once (back-pressure); a cluster with more CPUs
    # than 8 wants more, to keep them busy
    max_in_flight: int = Field(8, ge=1)
    # V2S_OUTAGE_WAIT_S: how long a run waits for its database to come back (a restart, a failover, a full
    # disk being cleared) before it stops, resumable; every step is done again once it is back
    outage_wait_s: float = Field(600.0, ge=0)

    @property
    def stages(self) -> StageSettings:
        return StageSettings(lease_s=self.lease_s, stage_attempts=self.stage_attempts)
