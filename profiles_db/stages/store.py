"""StageStore: every read and write of the stage state (DESIGN.md §4, §8), in one object.

Its parts live in sibling modules, one concern each: the catalog of jobs, videos and segments
(`catalog`), claims, leases and their resume controls (`leases`), provider batches (`batches`), the plot chain (`chains`), the reads
for reports and exports (`views`), and those `v2s plan` estimates from (`history`).
"""

from __future__ import annotations

from profiles_db.db import Database
from profiles_db.stages.batches import BatchMixin
from profiles_db.stages.catalog import CatalogMixin
from profiles_db.stages.chains import ChainMixin
from profiles_db.stages.history import HistoryMixin
from profiles_db.stages.leases import LeaseMixin
from profiles_db.stages.states import Clock, StageSettings, utcnow
from profiles_db.stages.views import ViewMixin


class StageStore(CatalogMixin, LeaseMixin, BatchMixin, ChainMixin, ViewMixin, HistoryMixin):
    def __init__(
        self,
        db: Database,
        settings: StageSettings | None = None,
        *,
        clock: Clock = utcnow,
        lease_s: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        """`settings` come from the job (every worker of a run gets the same ones in its RunContext);
        `clock` is what leases are measured against — tests pass one they can move on."""
        settings = settings or StageSettings()
        overrides = {"lease_s": lease_s, "stage_attempts": max_attempts}
        self.settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        self.db, self.clock = db, clock

    @property
    def lease_s(self) -> float:
        return self.settings.lease_s

    @property
    def max_attempts(self) -> int:
        return self.settings.stage_attempts
