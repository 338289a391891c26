"""Job control: resume, submit to a Ray cluster, cancel (DESIGN.md §8, docs/cluster.md).

A job's spec is saved in jobs.config when it starts, so `resume` runs exactly the same job again: finished stages
are skipped by the tasks themselves (they look at stage_runs first) and make no model call; failed stages get a
fresh set of attempts. A submitted job's Ray submission id IS the v2s job id, so `cancel` needs nothing more.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from rich.console import Console

from jobs.runner import JobSpec, RunSummary, run_job
from jobs.settings import RAY_ADDRESS_ENV
from profiles_db.db import Database, shown_url, without_password
from profiles_db.stages import JobStatus, StageStore
from workers.storage import is_remote

# Forwarded to the cluster by NAME through runtime_env env_vars when they are set in the caller's environment.
# Their values go into the job's runtime_env, never into the log or the printed command.
FORWARDED_ENV = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "V2S_GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "V2S_OPENAI_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
FORWARDED_PREFIXES = ("V2S_",)
NOT_FORWARDED = {"V2S_RAY_TOKEN"}
# Ray's runtime_env agent logs env_vars values on the nodes, so credentials travel only when asked for
# (`--forward-secrets`); by default the nodes hold their own keys (environment, image or profile).
SECRET_ENV = {
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "V2S_GEMINI_API_KEY",
    "DEEPSEEK_API_KEY",
    "OPENAI_API_KEY",
    "V2S_OPENAI_API_KEY",
    "V2S_JUDGE_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}
# URLs that are secrets only when they carry a password (V2S_DATABASE_URL without one is a plain setting)
URL_ENV = {"V2S_DATABASE_URL"}
AGENT_WAIT_TRIES = 15  # × 2 s  # the Ray token authenticates the submission; the job does not need it


class ControlError(RuntimeError):
    """A job control request that cannot be done (unknown job, no Ray address...); the CLI prints it."""


def load_spec(db: Database, job_id: str, out: str | Path | None = None) -> JobSpec:
    """The job's saved spec, its output where it is now: a self-contained output (its SQLite database inside
    it) is where that database is, wherever the run first wrote it. `out`, when given, must be that place:
    resuming into another folder would split one job's records over two outputs."""
    job = StageStore(db).job(job_id)
    if job is None:
        raise ControlError(f"no job {job_id} in {shown_url(db.url)}")
    spec = JobSpec.model_validate({**(job.config or {}), "database_url": db.url})
    home = _output_holding(db)
    if home is not None and not _same_place(home, spec.out):
        spec = spec.model_copy(update={"out": home})  # moved or copied whole: it goes on where it is now
    if out is not None and not _same_place(out, spec.out):
        raise ControlError(
            f"job {job_id} writes to {spec.out} (its database {shown_url(db.url)} says so), not {out}: move the "
            f"output back to {spec.out}, or move it together with its database"
        )
    return spec


def _output_holding(db: Database) -> Path | None:
    """The output folder a SQLite database lives in, when it does (it holds the output's shards or proxies)."""
    path = db.engine.url.database if db.engine.url.get_backend_name() == "sqlite" else None
    if not path:
        return None
    folder = Path(path).resolve().parent
    return (
        folder if any((folder / part).exists() for part in ("shards", "proxies", "manifest.json")) else None
    )


def _same_place(a: str | Path, b: str | Path) -> bool:
    if is_remote(a) or is_remote(b):
        return str(a).rstrip("/") == str(b).rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


def resume_job(
    db: Database,
    job_id: str,
    console: Console | None = None,
    *,
    only_reasons: set[str] | None = None,
    give_up: list[str] = (),
    budget_usd: float | None = None,
    segment_budget_usd: float | None = None,
    out: str | Path | None = None,
) -> tuple[str, RunSummary]:
    """Run the job's saved spec again under the same id: failed and unfinished stages only.

    `only_reasons`: retry only the failed stages with these outcomes (default: all but deterministic blocks).
    `give_up`: segments (ids, or VIDEO_ID:IDX) whose plot is given up so their scope's chain goes on.
    Both take effect once the new run has started (the output is ours and Ray is up).
    `budget_usd`, `segment_budget_usd`: new caps for the job (totals over all its runs; kept with the job),
    else the ones it had. `out`: where the caller says the output is (load_spec)."""
    spec = with_budget(load_spec(db, job_id, out), budget_usd, segment_budget_usd)
    store = StageStore(db)
    try:  # a wrong reference fails before the run
        segments = [store.find_segment(ref, job_id) for ref in give_up]
    except ValueError as exc:
        raise ControlError(str(exc)) from None

    def before_work(store: StageStore) -> None:
        if segments:
            store.give_up(segments, reason="given up with v2s resume --give-up")
        store.reset_attempts(job_id, only_reasons)

    return run_job(spec, console, job_id=job_id, before_work=before_work)


def with_budget(spec: JobSpec, budget_usd: float | None, segment_budget_usd: float | None) -> JobSpec:
    """The spec with the caps given (validated like the spec's own); those not given stay as they were."""
    given = {"budget_usd": budget_usd, "segment_budget_usd": segment_budget_usd}
    given = {k: v for k, v in given.items() if v is not None}
    return JobSpec.model_validate({**spec.model_dump(), **given}) if given else spec


# -- Ray cluster -------------------------------------------------------------------------------------------
def ray_token() -> str | None:
    """The Ray 2.60 auth token, from where Ray itself looks (and V2S_RAY_TOKEN first)."""
    for name in ("V2S_RAY_TOKEN", "RAY_AUTH_TOKEN"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def job_client(address: str):
    """A JobSubmissionClient that sends the token as `Authorization: Bearer …` whether or not token auth is
    switched on in THIS process (Ray's own client only adds it when RAY_AUTH_MODE=token locally)."""
    from ray.job_submission import JobSubmissionClient

    token = ray_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    # Ray's client lets RAY_API_SERVER_ADDRESS / RAY_ADDRESS override the address it is given; the CLI has read
    # them already (only as `submit --address`'s fallback), so the address passed here is the one meant.
    hidden = {name: os.environ.pop(name) for name in RAY_ADDRESS_ENV if name in os.environ}
    try:
        return JobSubmissionClient(address, headers=headers)
    finally:
        os.environ.update(hidden)


def forwarded_env(environ: dict[str, str] | None = None, *, secrets: bool = False) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    names = {n for n in environ if n in FORWARDED_ENV or n.startswith(FORWARDED_PREFIXES)} - NOT_FORWARDED
    if not secrets:
        names -= SECRET_ENV
        names -= {n for n in names & URL_ENV if without_password(environ[n]) != environ[n]}
    return {n: environ[n] for n in sorted(names)}


def runtime_env(
    ship_code: bool = True, forward_secrets: bool = False, database_url: str | None = None
) -> dict:
    """Ship the project code (working_dir) and the settings/keys set here (by name) to the cluster.
    ship_code=False when the nodes already have v2s installed (an image or `pip install` on every node).
    `database_url` (the job's) travels here in full only with forward_secrets: the entrypoint has it without
    its password."""
    env: dict = {"env_vars": forwarded_env(secrets=forward_secrets)}
    if forward_secrets and database_url and without_password(database_url) != database_url:
        env["env_vars"]["V2S_DATABASE_URL"] = database_url
    if ship_code:
        env["working_dir"] = str(Path(__file__).resolve().parents[1])
        env["excludes"] = [".venv", ".git", "**/__pycache__", "*.sqlite", "bench/out", ".pytest_cache"]
    return env


def entrypoint(
    spec: JobSpec,
    job_id: str,
    *,
    resume: bool = False,
    only_reasons: set[str] | None = None,
    give_up: list[str] = (),
) -> str:
    """The command the cluster runs: `python -m jobs.cli run …` (or resume) with the same options. Ray shows it
    in its dashboard and job list, so the database URL is in it without its password: the driver takes that from
    its node's V2S_DATABASE_URL (or PGPASSWORD / ~/.pgpass), see `profiles_db.db.with_known_password`."""
    if resume:
        args = ["python", "-m", "jobs.cli", "resume", job_id]
        for reason in sorted(only_reasons or ()):
            args += ["--only-reason", reason]
        for ref in give_up:
            args += ["--give-up", ref]
    else:
        args = ["python", "-m", "jobs.cli", "run", spec.source, "--out", str(spec.out), "--job-id", job_id]
        args += ["--max-segment-s", str(spec.max_segment_s)]
    if spec.budget_usd is not None:
        args += ["--budget-usd", repr(spec.budget_usd)]
    if spec.segment_budget_usd is not None:
        args += ["--segment-budget-usd", repr(spec.segment_budget_usd)]
    if spec.database_url:
        args += ["--database-url", without_password(spec.database_url)]
    elif resume:
        args += ["--out", str(spec.out)]
    return shlex.join(args)


def submit_job(
    spec: JobSpec,
    address: str,
    job_id: str,
    *,
    resume: bool = False,
    ship_code: bool = True,
    forward_secrets: bool = False,
    only_reasons: set[str] | None = None,
    give_up: list[str] = (),
) -> str:
    """Submit to the Ray Jobs API; the submission id is the v2s job id. Returns it."""
    client = job_client(address)
    submission_id = job_id if not resume else f"{job_id}-resume-{os.urandom(3).hex()}"
    for attempt in range(AGENT_WAIT_TRIES):
        try:
            return client.submit_job(
                entrypoint=entrypoint(
                    spec, job_id, resume=resume, only_reasons=only_reasons, give_up=list(give_up)
                ),
                submission_id=submission_id,
                runtime_env=runtime_env(ship_code, forward_secrets, spec.database_url),
                metadata={"v2s_job": job_id},
            )
        except RuntimeError as exc:
            # a head that has just started has no job agent yet; Ray answers 500 "try again later"
            if "No available agent" not in str(exc) or attempt == AGENT_WAIT_TRIES - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def cancel_job(job_id: str, db: Database | None, address: str | None) -> list[str]:
    """Mark the job cancelled (the driver stops submitting work) and stop its Ray job(s). Returns what was done."""
    done = []
    if db is not None:
        store = StageStore(db)
        if store.job(job_id) is not None:
            store.finish_job(job_id, JobStatus.CANCELLED)
            done.append("marked cancelled in the database")
    if address:
        client = job_client(address)
        for info in client.list_jobs():
            if (info.metadata or {}).get("v2s_job") == job_id and not info.status.is_terminal():
                client.stop_job(info.submission_id)
                done.append(f"stopped Ray job {info.submission_id}")
    if not done:
        raise ControlError(f"job {job_id} not found in the database nor on the cluster")
    return done
