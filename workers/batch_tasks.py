"""One provider batch of a stage: the requests of many segments in one asynchronous job at the batch price.

The task claims every segment's stage, builds each request exactly as a synchronous task would
(workers/stage_steps.py), answers from the response cache what was answered before, and sends the rest as one
batch — unless the stage state says a batch already holds them (a run killed while it waited): then it polls
that batch instead of paying again. The batch's name is written to the stage state as soon as the provider
accepts it, and a create whose answer was lost is found again by its display name. While it waits, the task
renews its leases. Each finished item is read by its key (the segment id) and finished like a synchronous
answer; failed items, and answers that did not validate (as a repair turn), go into a new, smaller batch,
until `batch_rounds` batches have held them. A backend without a batch API makes standard calls.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray

from annotator.gateway import StageAsk, StructuredResult, estimate_tokens
from annotator.gateway.batch import BatchRun, BatchSnapshot, ItemState, display_name
from annotator.schemas.stage_results import PlotResult, ScriptResult
from profiles_db.stages import OpenBatch, RunStatus, Stage
from workers import stage_steps as steps
from workers.context import RunContext, gateway, patience, store
from workers.results import SKIPPED, SegmentOutcome
from workers.tasks import owner

log = logging.getLogger(__name__)


@dataclass
class _Item:
    ask: StageAsk
    state: ItemState
    extra: Any = None  # plot: its context cache; script: the plot's stored result


@ray.remote(num_cpus=0.25, max_retries=2)
def run_stage_batch(
    ctx: RunContext, stage: Stage, items: list[tuple[int, int | None]], wave: int | None = None
) -> list[SegmentOutcome]:
    """`items`: (segment id, chain index — the plot's position in its scope's chain, else None)."""
    # a batch found again by its name after an outage is polled, not sent again (see above)
    return patience(ctx).call(lambda: StageBatch(ctx, stage, wave).run(items), f"the {stage.value} batch")


class StageBatch:
    def __init__(self, ctx: RunContext, stage: Stage, wave: int | None) -> None:
        self.ctx, self.stage, self.wave = ctx, stage, wave
        self.st, self.gw = store(ctx), gateway(ctx)
        self.settings = self.gw.settings
        self.backend = getattr(self.settings, f"{stage.value}_backend")
        self.model = getattr(self.settings, f"{stage.value}_model")
        self.rounds = BatchRun(self.settings)
        self.owner = owner()
        self.items: dict[int, _Item] = {}
        self.outcomes: dict[int, SegmentOutcome] = {}
        self.cancelled: set[str] = set()  # batches this task cancelled (overdue), polled until they end

    def run(self, items: list[tuple[int, int | None]]) -> list[SegmentOutcome]:
        for segment_id, chain_index in items:
            self._claim(segment_id, chain_index)
        for segment_id, item in list(self.items.items()):  # answered before (by a killed run, say)
            hit = self.gw.cached(item.ask)
            if hit is not None:
                self._finish(segment_id, hit)
        api = self.gw.batches(self.backend) if self.items else None
        if api is None:  # no batch API (or nothing left to ask): standard calls
            for segment_id, item in list(self.items.items()):
                self._finish(segment_id, self.gw.ask(item.ask))
        else:
            self._wait(api)
        return [self.outcomes[segment_id] for segment_id, _ in items]

    # -- claiming and asking ------------------------------------------------------------------------------
    def _claim(self, segment_id: int, chain_index: int | None) -> None:
        blocked = self._not_ready(segment_id)
        if blocked is not None:
            self.outcomes[segment_id] = blocked
            return
        # a batch may be held by a dead run's task: its leases run out (or its retry takes them back) first
        if self.st.claim_waiting(segment_id, self.stage, self.owner, self.ctx.job_id) != "claimed":
            status, _ = self.st.result(segment_id, self.stage)
            self.outcomes[segment_id] = SegmentOutcome(segment_id=segment_id, status=status, stage=self.stage)
            return
        if self.stage == Stage.PLOT:
            ask, cache = steps.plot_ask(self.ctx, segment_id, chain_index or 1)
            item = _Item(ask, self.rounds.item(ask), cache)
        elif self.stage == Stage.SCRIPT:
            plot = PlotResult.model_validate(self.st.result(segment_id, Stage.PLOT)[1])
            ask = steps.script_ask(self.ctx, segment_id, plot)
            item = _Item(ask, self.rounds.item(ask), plot)
        else:
            plot = PlotResult.model_validate(self.st.result(segment_id, Stage.PLOT)[1])
            script = ScriptResult.model_validate(self.st.result(segment_id, Stage.SCRIPT)[1])
            ask = steps.distill_ask(self.ctx, plot, script)
            item = _Item(ask, self.rounds.item(ask))
        self.items[segment_id] = item

    def _not_ready(self, segment_id: int) -> SegmentOutcome | None:
        """The outcome of a segment with nothing to ask: its stage is final, or the stage before is not done."""
        status, _ = self.st.result(segment_id, self.stage)
        if status in (RunStatus.DONE, RunStatus.REJECTED):
            return SegmentOutcome(segment_id=segment_id, status=status, stage=self.stage)
        before = {Stage.SCRIPT: Stage.PLOT, Stage.DISTILL: Stage.SCRIPT}.get(self.stage)
        if before is not None:
            previous, _ = self.st.result(segment_id, before)
            if previous != RunStatus.DONE:
                return SegmentOutcome(segment_id=segment_id, status=SKIPPED, reason=f"{before} is {previous}")
        return None

    def _finish(self, segment_id: int, result: StructuredResult) -> None:
        item = self.items.pop(segment_id)
        self.gw.remember(item.ask, result)
        if self.stage == Stage.PLOT:
            outcome = steps.finish_plot(self.ctx, segment_id, result, item.extra)
        elif self.stage == Stage.SCRIPT:
            ended, _ = steps.finish_script(self.ctx, segment_id, result, item.extra)
            outcome = ended or SegmentOutcome(segment_id=segment_id, status=RunStatus.DONE)
        else:
            outcome = steps.finish_distill(self.ctx, segment_id, result)
        self.outcomes[segment_id] = outcome

    # -- batches ----------------------------------------------------------------------------------------------
    def _wait(self, api) -> None:
        waiting = self.st.waiting_batches(list(self.items), self.stage)
        for batch in waiting:  # polled, not sent again; its items have been in batch.attempt batches so far
            log.info("%s: waiting on %s, submitted by an earlier run", self.stage, batch.name)
            for segment_id in batch.segment_ids:
                self.items[segment_id].state.attempts = batch.attempt - 1
        held = {segment_id for batch in waiting for segment_id in batch.segment_ids}
        fresh = [segment_id for segment_id in self.items if segment_id not in held]
        if fresh:
            waiting += self._submit(api, fresh, attempt=1)
        while waiting:
            time.sleep(self.settings.batch_poll_s)
            self.st.renew(list(self.items), self.stage, self.owner)
            still: list[OpenBatch] = []
            retry: dict[int, list[int]] = {}
            for batch in waiting:
                snapshot = self._poll(api, batch)
                if snapshot is None:
                    still.append(batch)
                    continue
                for segment_id in self._settle(batch, snapshot):
                    retry.setdefault(batch.attempt + 1, []).append(segment_id)
            for attempt, segment_ids in sorted(retry.items()):
                still += self._submit(api, segment_ids, attempt=attempt)
            waiting = still

    def _poll(self, api, batch: OpenBatch) -> BatchSnapshot | None:
        """The batch once it has ended (None while it runs). One open past `batch_timeout_s` is cancelled and
        polled on until it says so, since a cancelled batch may keep the answers it finished (OpenAI's partial
        output); one that has not ended `batch_cancel_grace_s` after the cancel is given up."""
        snapshot = api.batch(batch.name, self.model)
        if snapshot.state != "open":
            return snapshot
        timeout = self.settings.batch_timeout_s
        if batch.age_s < timeout:
            batch.age_s += self.settings.batch_poll_s
            return None
        if batch.name not in self.cancelled:
            log.warning(
                "%s: %s is still open after %.0f s; cancelling it", self.stage, batch.name, batch.age_s
            )
            api.cancel_batch(batch.name)
            self.cancelled.add(batch.name)
        if batch.age_s < timeout + self.settings.batch_cancel_grace_s:
            batch.age_s += self.settings.batch_poll_s
            return None
        return snapshot.model_copy(update={"state": "expired", "error": "timed out (V2S_BATCH_TIMEOUT_S)"})

    def _settle(self, batch: OpenBatch, snapshot: BatchSnapshot) -> list[int]:
        """Finish the items the batch answered; returns those that go into another batch."""
        again, failed = [], 0
        for segment_id in batch.segment_ids:
            item = self.items.get(segment_id)
            if item is None:
                continue
            found = snapshot.results.get(str(segment_id))  # none when the batch ended without results
            if found is None or found.response is None:
                failed += 1
            result = self.rounds.settle(item.ask, item.state, found)
            if result is None:
                again.append(segment_id)
            else:
                self._finish(segment_id, result)
        self.st.close_batch(batch.name, snapshot.state, failed_items=failed, error=snapshot.error)
        if again:
            log.info("%s: %d items of %s go into another batch", self.stage, len(again), batch.name)
        return again

    def _created_before(self, api, name_hint: str) -> str | None:
        """A batch of exactly these requests that the provider accepted but the stage state never recorded
        (the run died between the two); one this job has read already is not taken again."""
        found = api.find_batch(name_hint)
        return found if found is not None and self.st.batch_state(found) in (None, "open") else None

    def _submit(self, api, segment_ids: list[int], *, attempt: int) -> list[OpenBatch]:
        """Send these items in batches of at most `batch_max_items`, recorded before they are waited on."""
        out = []
        size = self.settings.batch_max_items
        for start in range(0, len(segment_ids), size):
            chunk = segment_ids[start : start + size]
            requests = {str(sid): self.items[sid].state.request for sid in chunk}
            name_hint = display_name(self.ctx.job_id, self.stage.value, attempt, list(requests))
            name = self._created_before(api, name_hint) or api.submit_batch(self.model, requests, name_hint)
            price = self.settings.price(self.model)
            estimate = sum(price.cost(estimate_tokens(r), 0, "batch") for r in requests.values())
            self.st.open_batch(
                name,
                job_id=self.ctx.job_id,
                stage=self.stage,
                backend=self.backend,
                model=self.model,
                segment_ids=chunk,
                wave=self.wave,
                attempt=attempt,
                estimated_cost_usd=estimate,
            )
            log.info("%s: %s holds %d requests (attempt %d)", self.stage, name, len(chunk), attempt)
            out.append(
                OpenBatch(
                    name=name,
                    stage=self.stage,
                    backend=self.backend,
                    model=self.model,
                    wave=self.wave,
                    attempt=attempt,
                    items=len(chunk),
                    segment_ids=chunk,
                    estimated_cost_usd=estimate,
                    age_s=0.0,
                )
            )
        return out
