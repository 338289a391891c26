"""`v2s run`: one job over a SOURCE on a Ray (embedded by default), with progress and a summary."""

from __future__ import annotations

import logging
import math
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import ray
from pydantic import BaseModel, field_validator
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from annotator.settings import ModelSettings
from jobs.settings import EngineSettings
from jobs.sources import scan_sources
from profiles_db.db import (
    Database,
    UnusableDatabase,
    database_url_checked,
    sqlite_url,
    with_known_password,
)
from profiles_db.outage import Patience, Patient, as_outage, is_outage
from profiles_db.outputs import OutputBusy, OutputLease, output_key
from profiles_db.stages import JobStatus, StageStore
from workers.budget import Budget
from workers.context import RunContext
from workers.driver import RunSummary, run_pipeline
from workers.splitter.settings import SplitSettings
from workers.storage import is_remote, local_workdir, normalise

log = logging.getLogger(__name__)


class JobSpec(BaseModel):
    source: str
    out: Path | str  # a local folder (Path) or a bucket URI such as s3://bucket/prefix (str)
    database_url: str | None = None
    max_segment_s: float = 300.0
    ray_address: str | None = None
    num_cpus: int | None = None
    context_token_budget: int = 4000
    shard_max_records: int = 1000
    # The job's caps in US dollars over all its runs (docs/reliability.md#budgets): the whole job, and one
    # segment. A resume may raise them (`v2s resume JOB --budget-usd MORE`); None: no cap.
    budget_usd: float | None = None
    segment_budget_usd: float | None = None

    @field_validator("budget_usd", "segment_budget_usd")
    @classmethod
    def _positive(cls, value: float | None, info) -> float | None:
        return positive_usd(value, "--" + info.field_name.replace("_", "-"))

    def budget(self) -> Budget:
        return Budget(limit_usd=self.budget_usd, segment_limit_usd=self.segment_budget_usd)

    @field_validator("out", mode="before")
    @classmethod
    def _out_uri(cls, value: object) -> Path | str:
        return normalise(str(value))

    def db_url(self) -> str:
        # A bucket output keeps its default SQLite in a local folder of its own (workers.storage.local_workdir).
        folder = local_workdir(self.out) if is_remote(self.out) else self.out
        known = EngineSettings().database_url
        if self.database_url:
            checked_url(self.database_url)
            return with_known_password(self.database_url, known)  # a submitted job's URL has none
        return checked_url(known) if known else sqlite_url(folder / "v2s.sqlite")


def positive_usd(value: float | None, option: str) -> float | None:
    """A budget as given, or ValueError in one line: zero, a negative, NaN or infinity is no budget to keep."""
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise ValueError(f"{option} must be a positive number of US dollars, not {value:g}")
    return value


def checked_url(url: str) -> str:
    """`url` when SQLAlchemy can parse it and knows its dialect; else JobRefused saying how to write it."""
    try:
        return database_url_checked(url)
    except UnusableDatabase as exc:
        raise JobRefused(str(exc)) from None


def ray_address(spec: JobSpec) -> str:
    """Where the job's tasks run. Inside a submitted Ray job the supervisor sets RAY_ADDRESS, and the job must join
    that cluster (a Ray of its own would neither use the cluster nor find the uploaded working_dir). Otherwise
    "local": without an address Ray would join any cluster `ray start` left on this machine."""
    return spec.ray_address or os.environ.get("RAY_ADDRESS") or "local"


class JobRefused(RuntimeError):
    """The job cannot start (or go on) here; the one-line message names the input and what to do. The job's
    state in the database is left true: a job that never started keeps the status it had."""


def run_context(
    spec: JobSpec, job_id: str, db_url: str, out_dir: str, config: EngineSettings, models: ModelSettings
) -> RunContext:
    """What every task of the run is given: the job's spec and the settings this driver read once (the model
    settings without their keys: each worker reads those from its own environment)."""
    return RunContext(
        job_id=job_id,
        db_url=db_url,
        out_dir=out_dir,
        max_segment_s=spec.max_segment_s,
        context_token_budget=spec.context_token_budget,
        shard_max_records=spec.shard_max_records,
        max_in_flight=config.max_in_flight,
        stages=config.stages,
        models=models.without_keys(),
        split=SplitSettings(),
        budget=spec.budget(),
        outage_wait_s=config.outage_wait_s,
    )


def run_job(
    spec: JobSpec,
    console: Console | None = None,
    job_id: str | None = None,
    *,
    before_work: Callable[[StageStore], None] | None = None,
    prepare_only: bool = False,
    models: ModelSettings | None = None,
    check_calls: bool = True,
) -> tuple[str, RunSummary]:
    """Run (or, with the id of an existing job, resume) a job. Finished stages are skipped, never redone.

    `before_work` (resume: reset failed stages, give some up) runs once the run has really started — the
    output is ours and Ray is up — so a run that cannot start changes nothing. `prepare_only` (`v2s plan`)
    splits the videos and cuts their proxies, which a later run of the same output reuses, and asks no model:
    the job ends "planned" (`plan_job` checked the models before). `models`: the model settings, read from the
    environment when not given; its tasks get them without the keys (each worker reads its own).

    Before anything is split, the models are checked (`v2s check`, jobs/check.py): a retired, unpriced,
    unserved or routed model, a refused key or a refused request shape stops the job with one line (ModelCallError).
    `check_calls=False` skips the check's tiny paid calls and keeps its free part."""
    console = console or Console()
    _check_output(spec)
    listing = scan_sources(spec.source)  # what it leaves out is kept with the job, for `v2s status`
    models = models or ModelSettings()
    if not prepare_only:  # a wrong key or model stops the job here, before any segment is touched
        check_before_work(console, models, check_calls)
    db_url = spec.db_url()
    db = open_database(db_url)
    job_id = job_id or new_job_id()
    out_dir = spec.out if is_remote(spec.out) else str(spec.out.resolve())
    config = EngineSettings()
    lease = OutputLease(db, output_key(out_dir, db_url), job_id, lease_s=config.output_lease_s, label=out_dir)
    try:
        lease.acquire()  # one run per output, across machines: a second one is refused here (OutputBusy)
        started_here = not ray.is_initialized()
        if started_here:
            _start_ray(spec, console)
        heartbeat = _Heartbeat(lease)
        try:
            store = StageStore(db, config.stages)
            store.expire_leases_of(job_id)  # this output is ours: what its earlier run still leased is dead
            if before_work is not None:
                before_work(store)
            ctx = run_context(spec, job_id, db_url, out_dir, config, models)
            return job_id, _run_started(store, ctx, spec, listing, console, prepare_only, heartbeat)
        finally:
            heartbeat.stop()
            if started_here:
                ray.shutdown()
    finally:
        _release(lease)
        db.dispose()


def _release(lease: OutputLease) -> None:
    """Let the output go; a database still away cannot take that, and the lease then runs out by itself."""
    try:
        lease.release()
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning(
            "output lease of %s not released (the database is away); it runs out by itself", lease.label
        )


def check_before_work(console: Console, models: ModelSettings, calls: bool = True) -> None:
    """`v2s check` before a run or a plan splits anything: its one-line summary, or ModelCallError."""
    from jobs.check import check_models

    report = check_models(models, calls=calls)
    console.print(f"[dim]{report.summary()}[/dim]", emoji=False, highlight=False)
    print_warnings(console, report.warnings)


def print_warnings(console: Console, warnings: list[str]) -> None:
    """The check's warnings (what the job will lack), once per job."""
    for warning in warnings:
        from jobs.cli_common import escape

        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", emoji=False, highlight=False)


def _run_started(
    store: StageStore, ctx: RunContext, spec: JobSpec, listing, console, prepare_only, heartbeat=None
) -> RunSummary:
    """The job's row running, its videos through the pipeline, and its final status."""
    job_id = ctx.job_id
    config = spec.model_dump(mode="json", exclude={"database_url"})
    skipped = [entry.model_dump() for entry in listing.skipped]
    store.ensure_job(job_id, spec.source, str(spec.out), config, skipped=skipped)
    cancelled = cancel_check(store, job_id)
    lost = heartbeat.lost if heartbeat is not None else threading.Event()
    try:
        summary = _run_with_progress(
            ctx, listing.videos, console, lambda: cancelled() or lost.is_set(), prepare_only
        )
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, resumable
        store.finish_job(job_id, JobStatus.INTERRUPTED, only_if=JobStatus.RUNNING)
        raise
    except BaseException as exc:
        outage = as_outage(exc)
        if outage is not None:  # waited out as long as allowed: stopped, resumable, in one line
            _mark_interrupted(store, job_id)
            raise outage from None
        # never left "running" by a run that is gone (a cancel that stopped it stays "cancelled")
        store.finish_job(job_id, JobStatus.FAILED, only_if=JobStatus.RUNNING)
        raise
    if lost.is_set():  # another run took the output over while the database was away: this one stopped
        _mark_interrupted(store, job_id)
        raise OutputBusy(
            f"output {spec.out}: its lease ran out while the database was away and another run took it"
        )
    store = Patient(store, Patience(ctx.db_url, ctx.outage_wait_s))  # the last writes wait out an outage too
    outcome = JobStatus.PLANNED if prepare_only else store.job_outcome(job_id)
    if summary.paused:  # stopped at its budget with work left: neither done nor failed, resumable
        outcome = JobStatus.PAUSED
    if summary.interrupted:  # the first Ctrl-C: what was in flight finished and is kept
        outcome = JobStatus.INTERRUPTED
    elif summary.cancelled:
        outcome = JobStatus.CANCELLED
    store.finish_job(job_id, outcome)
    return summary


def _run_with_progress(
    ctx: RunContext, videos, console: Console, should_stop, prepare_only: bool = False
) -> RunSummary:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bars = {
            "prepared": progress.add_task("split videos", total=len(videos)),
            "plot": progress.add_task("plot reasoning", total=None),
            "annotate": progress.add_task("script + thinking", total=None),
        }

        def on_event(kind: str, data: dict) -> None:
            if kind == "chain":
                for name in ("plot", "annotate"):
                    total = progress.tasks[bars[name]].total or 0
                    progress.update(bars[name], total=total + data["segments"])
            elif kind in bars:
                progress.advance(bars[kind])

        if prepare_only:
            for name in ("plot", "annotate"):
                progress.remove_task(bars[name])
        return run_pipeline(ctx, videos, on_event, should_stop=should_stop, prepare_only=prepare_only)


def _check_output(spec: JobSpec) -> None:
    if is_remote(spec.out):
        return
    try:
        spec.out.mkdir(parents=True, exist_ok=True)
        probe = spec.out / f".v2s-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise JobRefused(f"output {spec.out} is not writable: {exc.strerror or exc}") from None


def open_database(url: str) -> Database:
    """The job database, or JobRefused naming it (without its password) and why it cannot be used."""
    try:
        return Database.opened(url)
    except UnusableDatabase as exc:
        raise JobRefused(str(exc)) from None


def _start_ray(spec: JobSpec, console: Console) -> None:
    address = ray_address(spec)
    try:
        ray.init(
            address=address,
            num_cpus=spec.num_cpus if address == "local" else None,  # a cluster has its own
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    except Exception as exc:  # a timeout, a cluster that is not there: nothing has been changed yet
        raise JobRefused(f"Ray could not start at {address}: {type(exc).__name__}: {exc}") from None
    where = "a local Ray" if address == "local" else "the Ray cluster"
    console.print(f"[dim]running on {where} at {ray.get_runtime_context().gcs_address}[/dim]")


class _Heartbeat:
    """Renews the output lease while the run lives (a killed run stops renewing; its lease runs out)."""

    def __init__(self, lease: OutputLease) -> None:
        self.lease, self._stop = lease, threading.Event()
        self.lost = threading.Event()  # another run took the output after the lease ran out: stop
        self._thread = threading.Thread(target=self._beat, name="v2s-output-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease.lease_s / 3):
            try:
                if not self.lease.renew():
                    logging.getLogger(__name__).error("output lease of %s lost", self.lease.label)
                    self.lost.set()
                    return
            except Exception as exc:  # a database hiccup: try again at the next beat
                logging.getLogger(__name__).warning("output lease heartbeat failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def new_job_id() -> str:
    return "job-" + uuid.uuid4().hex[:10]


def _mark_interrupted(store: StageStore, job_id: str) -> None:
    """The job is `interrupted` when the database answers now; else `v2s status` shows it so from its lapsed
    output lease."""
    try:
        store.finish_job(job_id, JobStatus.INTERRUPTED, only_if=JobStatus.RUNNING)
    except Exception as exc:
        if not is_outage(exc):
            raise


def cancel_check(store: StageStore, job_id: str, every_s: float = 2.0):
    """`v2s cancel` marks the job cancelled in the database; the driver polls that, at most every few seconds."""
    import time

    last = [0.0, False]

    def cancelled() -> bool:
        if not last[1] and time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            try:
                last[1] = store.job_status(job_id) == JobStatus.CANCELLED
            except Exception as exc:  # the database is away: asked again at the next poll
                if not is_outage(exc):
                    raise
        return bool(last[1])

    return cancelled


def check_model_access(settings: ModelSettings) -> None:
    """The free part of `v2s check` (jobs/check.py): the catalog, then one free authenticated call per stage
    model. ModelCallError (outcome "config" or "auth") names the stage and the fix."""
    from jobs.check import check_models

    check_models(settings, calls=False)
