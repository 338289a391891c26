"""A job on a real multi-node Ray cluster (ray.cluster_utils.Cluster: a head and two worker nodes) loses a worker
node in the middle; the job still finishes with every expected record present exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import ray
from ray.cluster_utils import Cluster
from sqlalchemy import func, select

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.film import render_sample
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from jobs.runner import JobSpec, run_job
from profiles_db.db import Database
from profiles_db.models import StageRun
from tests import e2e_checks as checks

pytestmark = pytest.mark.slow
# The cluster scenario runs in a fresh Python process. After an in-process `v2s run` earlier in the same pytest
# process (tests/test_cli_out.py or tests/test_bucket_job.py before this file reproduce it every time), the
# shard writer actor created on the ray.cluster_utils.Cluster is dead at once: state REF_DELETED, never_started,
# owner = this driver, while the driver still holds its handle. A plain script doing the same sequence (a run_job
# on a local Ray, shutdown, then the cluster, the writer created from a thread) does not reproduce it; not solved.
IN_FRESH_PROCESS = "V2S_CLUSTER_TEST_CHILD"
SEGMENTS = 4
TASKS = {"prepare_video", "reason_plot", "annotate_segment", "build_records"}


class SlowModel(Behaviours):
    def before_answer(self, request: RequestInfo) -> Fault | None:
        return Fault(delay_s=1.0)


def _done_stages(db_path) -> int:
    if not db_path.exists():
        return 0
    db = Database(f"sqlite:///{db_path}", auto_upgrade=False)
    try:
        with db.sessions() as s:
            return s.scalar(select(func.count()).select_from(StageRun).where(StageRun.status == "done")) or 0
    except Exception:  # the schema is being created
        return 0
    finally:
        db.dispose()


def _busy_worker_node(workers) -> object | None:
    """The worker node running most v2s tasks right now (so removing it really interrupts work), or None."""
    from ray.util.state import list_tasks

    running = list_tasks(filters=[("state", "=", "RUNNING")], limit=1000)
    per_node = {w.node_id: 0 for w in workers}
    for task in running:
        if task.node_id in per_node and task.name in TASKS:
            per_node[task.node_id] += 1
    busiest = max(per_node, key=per_node.get)
    return next(w for w in workers if w.node_id == busiest) if per_node[busiest] else None


def test_a_worker_node_is_lost_mid_job_and_every_record_is_written_once(tmp_path):
    if os.environ.get(IN_FRESH_PROCESS) != "1":
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"{__file__}::{_node_loss_name()}",
            ],
            env={**os.environ, IN_FRESH_PROCESS: "1"},
            capture_output=True,
            text=True,
            timeout=800,
        )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        assert "1 passed" in done.stdout
        return
    film, screenplay = render_sample(tmp_path / "film")
    out = tmp_path / "out"
    saved = dict(os.environ)
    with SimulatorServer(Screenplay.load(screenplay), behaviours=SlowModel()) as server:
        os.environ.update(  # the nodes started below inherit these
            {
                "V2S_GEMINI_BASE_URL": server.base_url,
                "V2S_GEMINI_API_KEY": "sim-test-key-cluster",
                "V2S_OPENAI_BASE_URL": f"{server.base_url}/v1",
                "V2S_OPENAI_API_KEY": "sim-test-key-cluster",
                "V2S_LEASE_S": "5",
            }
        )
        cluster = Cluster(
            initialize_head=True,
            head_node_args={  # the dashboard serves the state API used to find the busiest node
                "num_cpus": 1,
                "include_dashboard": True,
                "dashboard_port": checks.free_port(),
            },
        )
        try:
            workers = [cluster.add_node(num_cpus=2), cluster.add_node(num_cpus=2)]
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, log_to_driver=False)
            result: dict = {}
            spec = JobSpec(source=str(film), out=out, max_segment_s=60)
            runner = threading.Thread(
                target=lambda: result.update(zip(("job", "summary"), run_job(spec), strict=True))
            )
            runner.start()
            deadline = time.monotonic() + 240
            lost = None
            while lost is None:  # some work done, and a worker node in the middle of a stage
                assert runner.is_alive() and time.monotonic() < deadline
                time.sleep(0.2)
                if _done_stages(out / "v2s.sqlite") >= 2:
                    lost = _busy_worker_node(workers)
            cluster.remove_node(lost, allow_graceful=False)
            runner.join(timeout=400)
            assert not runner.is_alive()
        finally:
            ray.shutdown()
            cluster.shutdown()
            os.environ.clear()
            os.environ.update(saved)
    summary = result["summary"]
    assert summary.failed_videos == {} and summary.stage_failures == [], summary
    found = checks.records(out)
    keys = [(r["video"]["video_id"], r["video"]["segment_index"]) for r in found]
    assert len(keys) == len(set(keys)) == SEGMENTS
    checks.check_manifest_matches_the_files(out, expected_records=SEGMENTS)


def _node_loss_name() -> str:
    return test_a_worker_node_is_lost_mid_job_and_every_record_is_written_once.__name__
