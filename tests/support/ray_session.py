"""One local Ray for the session's in-process jobs.

`run_job` uses a Ray that is already up instead of starting its own, and a job's tasks get every setting from
the run context (workers/context.py), so many jobs can share one Ray: the start (~8 s) and the workers' imports
(~10 s) are paid once per session instead of once per job. A module opts in with `pytestmark =
pytest.mark.shared_ray`; a module that starts a Ray of its own, runs jobs with `RAY_ADDRESS=auto`, or whose
workers must see environment variables of its own (bucket endpoints and credentials, which each worker reads
from its environment, as on a cluster) is marked `own_ray`, and the shared Ray is shut down before it (the next
shared module starts it again). Every module that runs a job in-process carries one of the two marks.
"""

from __future__ import annotations

import logging

import ray

# Each worker reads the model keys from its own environment (annotator.settings.ModelKeys), never from the
# job: the shared Ray's workers get this one. The simulator takes any key unless a test restricts them (such a
# test runs its job on a Ray of its own).
SHARED_KEY = "sim-shared-ray-key"
CPUS = 2  # what the tests' jobs ask for (JobSpec num_cpus=2): the same scheduling as a Ray of their own


_shared: dict[str, str] = {}  # the shared Ray's GCS address, while it is up


def ensure_shared_ray() -> None:
    if ray.is_initialized():
        if ray.get_runtime_context().gcs_address == _shared.get("gcs"):
            return
        ray.shutdown()  # a Ray some other module left up: its workers lack the shared key
    ray.init(
        address="local",
        num_cpus=CPUS,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        configure_logging=False,
        runtime_env={"env_vars": {"V2S_GEMINI_API_KEY": SHARED_KEY, "V2S_OPENAI_API_KEY": SHARED_KEY}},
    )
    _shared["gcs"] = ray.get_runtime_context().gcs_address


def stop_shared_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
