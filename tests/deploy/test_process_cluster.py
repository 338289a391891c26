"""The same job on a cluster of real Ray processes, shaped like the KubeRay deployment in deploy/kuberay/.

One cluster for the module: `ray start --head` (0 CPUs: it runs the dashboard, the Jobs API and the job's
driver, never a task) and two `ray start --address …` workers (2 CPUs and a custom resource each), token
authentication on. The peers are real: PostgreSQL (a fresh database), an S3-compatible server (moto) holding a
bucket of six videos, and the simulator standing in for Gemini and DeepSeek. As in the pods of
deploy/kuberay/raycluster.yaml, every node holds the model keys, the bucket credentials and the database URL in
its own environment (Kubernetes Secrets there); `v2s submit` sends none of them, and uploads the code as
`working_dir`.

1. A job over the bucket finishes with every record exactly once and one model call per stage, its work on both
   workers; the head's dashboard lists the job (no secret in it) and its Prometheus service discovery leads to
   the engine's metrics; `v2s status` reads the job from the cluster's database.
2. A second job loses a worker (SIGKILL of its raylet) while that worker runs annotate tasks: Ray runs them again
   on the other worker, the job still finishes with every record exactly once, and no paid call is repeated
   (only calls whose answers the kill cut off are made again).

This replaces tests/test_cluster.py's in-process `ray.cluster_utils.Cluster` scenario (see docs/deploy.md).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from annotator.simulator.behaviours import Behaviours, Fault, RequestInfo
from annotator.simulator.files import inspect_video
from annotator.simulator.screenplay import Screenplay
from annotator.simulator.server import SimulatorServer
from tests.deploy.ray_processes import RayNode, RayProcessCluster
from tests.support import e2e as checks
from tests.support.db import postgres_admin_url
from tests.support.films import film_copy

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]
ROOT = Path(__file__).resolve().parents[2]
VIDEOS = 6
CLIP_S, MAX_SEGMENT_S = 12, 20  # one short segment a video: the whole module must fit in ~2 minutes
DELAYS = {"plot": 0.3, "script": 1.5, "distill": 0.5}  # seconds a simulated model takes to answer
KEYS = {  # what the nodes hold as Secrets; none of them may reach the job's spec, runtime_env or logs
    "V2S_GEMINI_API_KEY": "sim-gemini-key-" + secrets.token_hex(6),
    "V2S_OPENAI_API_KEY": "sim-deepseek-key-" + secrets.token_hex(6),
}


DB_PASSWORD = "db-pw-" + secrets.token_hex(6)


@dataclass(frozen=True)
class Call:
    stage: str  # plot, script, distill
    key: tuple  # (video id, segment index) for a call that shows a segment's video, else (prompt hash,)
    arrived: float  # time.monotonic() in this process (the simulator runs here)
    answered: float


class SlowModel(Behaviours):
    def before_answer(self, request: RequestInfo) -> Fault | None:
        return Fault(delay_s=DELAYS.get(request.stage.value.split("_")[0], 0.3))


class CountingSimulator(SimulatorServer):
    """The simulator, remembering which segment (or prompt) each answered model call was for, and when."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[Call] = []
        self._calls_lock = threading.Lock()

    def answer(self, api, model, stage, request, *, received_s=None):
        arrived = time.monotonic()
        video = request.video
        facts = inspect_video(video.data) if video is not None and video.data is not None else None
        if facts is not None and facts.provenance is not None:
            key: tuple = (facts.provenance.video_id, facts.provenance.segment_index)
        else:
            key = (hash("\n".join(request.texts)),)
        result = super().answer(api, model, stage, request, received_s=received_s)
        kind = "plot" if stage.value.startswith("plot") else stage.value  # plot_first, plot_next
        with self._calls_lock:
            self.calls.append(Call(kind, key, arrived, time.monotonic()))
        return result

    def calls_since(self, started: float, video_ids: set[str]) -> list[Call]:
        """The calls of one job: those showing its videos, and the text-only ones (distill) made since it began."""
        with self._calls_lock:
            return [
                c
                for c in self.calls
                if c.key[0] in video_ids or (c.stage == "distill" and c.arrived >= started)
            ]


@dataclass
class Deployment:
    cluster: RayProcessCluster
    workers: list[RayNode]
    simulator: CountingSimulator
    database_url: str
    submit_env: dict[str, str]

    def sql(self, query: str, **params) -> list[tuple]:
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(query), params)]
        finally:
            engine.dispose()


# -- peers ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database_url():
    """A fresh PostgreSQL database for the cluster (dropped at the end), migrated as `v2s db upgrade` does."""
    from profiles_db.db import upgrade

    admin = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "no PostgreSQL here"
        admin.dispose()
        message = f"PostgreSQL at {postgres_admin_url()} unreachable: {type(exc).__name__}"
        if os.environ.get("V2S_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    name = f"v2s_deploy_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # with a password, as a real deployment's (trust auth here ignores it): it must never reach the dashboard
    url = (
        make_url(postgres_admin_url())
        .set(database=name, password=DB_PASSWORD)
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def deployment(database_url):
    root = Path(tempfile.mkdtemp(prefix="v2sk8s-", dir="/tmp"))  # short: Ray's socket paths live under it
    clip = film_copy(Screenplay.load(), root / "clip.mp4", width=160, height=90, fps=6, until_s=CLIP_S)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    with checks.moto_s3(root / "test-cache") as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="films")
        for prefix in ("normal", "node-loss"):
            for i in range(VIDEOS):
                s3.upload_file(str(clip), "films", f"{prefix}/episode {i + 1}.mp4")
        with CountingSimulator(Screenplay.load(), behaviours=SlowModel()) as simulator:
            home = root / "home"
            home.mkdir()
            pod_env = {  # on Kubernetes: the v2s-settings ConfigMap and the v2s-* Secrets, as env vars
                "PATH": os.environ["PATH"],
                "HOME": str(home),
                "LANG": "C.UTF-8",
                "V2S_DATABASE_URL": database_url,
                "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
                "AWS_DEFAULT_REGION": "us-east-1",
                "V2S_S3_ENDPOINT_URL": endpoint,
                "V2S_GEMINI_BASE_URL": simulator.base_url,
                "V2S_OPENAI_BASE_URL": f"{simulator.base_url}/v1",
                **KEYS,
            }
            token = secrets.token_hex(32)
            cluster = RayProcessCluster(root / "ray", pod_env, token)
            try:
                cluster.start_head(num_cpus=0, env={"V2S_CACHE_DIR": str(root / "cache-head")})
                workers = [
                    cluster.add_worker(
                        name,
                        2,
                        {f"v2s_{name.replace('-', '_')}": 1},
                        {"V2S_CACHE_DIR": str(root / f"cache-{name}")},
                    )
                    for name in ("worker-a", "worker-b")
                ]
                cluster.wait_for_nodes(3)
                submit_env = {  # the user's shell: the Ray token and a setting for this job, no key
                    "PATH": os.environ["PATH"],
                    "HOME": str(home),
                    "V2S_RAY_TOKEN": token,
                    "V2S_LEASE_S": "30",
                    "COLUMNS": "200",
                }
                yield Deployment(cluster, workers, simulator, database_url, submit_env)
            finally:
                cluster.shutdown()
                shutil.rmtree(root, ignore_errors=True)


# -- helpers -------------------------------------------------------------------------------------------------


def v2s(deployment: Deployment, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args],
        cwd=ROOT,
        env={**deployment.submit_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def submit(deployment: Deployment, source: str, out: str, *options: str) -> str:
    stdout = v2s(
        deployment, "submit", source, "--out", out, "--address", deployment.cluster.dashboard,
        "--max-segment-s", str(MAX_SEGMENT_S), *options,
    )  # fmt: skip
    assert DB_PASSWORD not in stdout
    line = next(line for line in stdout.splitlines() if line.startswith("job "))
    return line.split()[1]


def logs(deployment: Deployment, job_id: str) -> str:
    return deployment.cluster.get(f"/api/jobs/{job_id}/logs")["logs"]


def wait_until_finished(deployment: Deployment, job_id: str, timeout_s: float = 240) -> dict:
    finished: dict = {}

    def done() -> bool:
        finished.update(deployment.cluster.get(f"/api/jobs/{job_id}"))
        return finished["status"] in ("SUCCEEDED", "FAILED", "STOPPED")

    deployment.cluster.wait(done, timeout_s, f"Ray job {job_id}")
    assert finished["status"] == "SUCCEEDED", logs(deployment, job_id)[-5000:]
    return finished


def video_ids(deployment: Deployment, job_id: str) -> set[str]:
    return {row[0] for row in deployment.sql("SELECT id FROM videos WHERE job_id = :j", j=job_id)}


def check_every_record_once(deployment: Deployment, job_id: str, out: str) -> int:
    """Every segment of every video of the job is exported exactly once; returns the number of segments."""
    segments = deployment.sql(
        "SELECT s.video_id, s.idx FROM segments s JOIN videos v ON v.id = s.video_id WHERE v.job_id = :j",
        j=job_id,
    )
    assert len({video for video, _ in segments}) == VIDEOS
    stages = deployment.sql(
        "SELECT r.stage, r.status, count(*) FROM stage_runs r JOIN segments s ON s.id = r.segment_id "
        "JOIN videos v ON v.id = s.video_id WHERE v.job_id = :j GROUP BY r.stage, r.status",
        j=job_id,
    )
    assert sorted(stages) == sorted(
        (s, "done", len(segments)) for s in ("plot", "script", "distill", "export")
    )
    by_run = deployment.sql(  # every stage run names the job that ran it, the export too
        "SELECT stage, count(*) FROM stage_runs WHERE job_id = :j GROUP BY stage", j=job_id
    )
    assert sorted(by_run) == [(s, len(segments)) for s in ("distill", "export", "plot", "script")]
    found = checks.records(out)
    keys = [(r["video"]["video_id"], r["video"]["segment_index"]) for r in found]
    assert len(keys) == len(set(keys)) == len(segments)
    assert set(keys) == set(segments)
    checks.check_manifest_matches_the_files(out, expected_records=len(segments))
    return len(segments)


def metrics_sum(deployment: Deployment, name: str, **labels: str) -> float:
    """Scrape every target the head's Prometheus service discovery lists (as Prometheus would) and add up one
    metric. Targets are read on loopback: their ports are those of this machine's nodes."""
    targets = deployment.cluster.get("/api/prometheus/sd")[0]["targets"]
    total = 0.0
    for target in targets:
        port = target.rsplit(":", 1)[1]
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        for line in body.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


# -- the tests -----------------------------------------------------------------------------------------------


def test_a_submitted_bucket_job_finishes_on_the_cluster_with_every_record_once(deployment):
    cluster, out = deployment.cluster, "s3://films/out-normal"
    started = time.monotonic()
    # the database named on the command line, password and all, as a user would: the job's command shows it
    # without the password, which the driver takes from its node's V2S_DATABASE_URL
    job_id = submit(deployment, "s3://films/normal/", out, "--database-url", deployment.database_url)
    info = wait_until_finished(deployment, job_id)
    log = logs(deployment, job_id)
    assert re.search(rf"running on the Ray cluster at \S+:{cluster.gcs_port}\b", log), log[-3000:]
    segments = check_every_record_once(deployment, job_id, out)

    # one paid call per stage and segment: nothing asked twice
    calls = deployment.simulator.calls_since(started, video_ids(deployment, job_id))
    per_segment = Counter((c.stage, c.key) for c in calls if c.stage != "distill")
    assert sorted(Counter(stage for stage, _ in per_segment).items()) == [
        ("plot", segments),
        ("script", segments),
    ]
    assert set(per_segment.values()) == {1}
    assert 1 <= sum(c.stage == "distill" for c in calls) <= segments  # equal prompts may come from the cache

    # the work spread over both workers; the head (0 CPUs) ran the driver only
    tasks = cluster.state("tasks", job_id=info["job_id"])
    nodes = Counter(t["node_id"] for t in tasks if t["name"] in ("prepare_video", "annotate_segment"))
    assert set(nodes) == {cluster.node_id(w) for w in deployment.workers}, nodes

    # the head's dashboard lists the job; no key, bucket secret or database URL is in what it shows
    listed = next(j for j in cluster.get("/api/jobs/") if j["submission_id"] == job_id)
    assert listed["status"] == "SUCCEEDED" and listed["metadata"] == {"v2s_job": job_id}
    shown = json.dumps(listed) + log
    for secret in [*KEYS.values(), os.environ["AWS_SECRET_ACCESS_KEY"], DB_PASSWORD]:
        assert secret not in shown
    assert "--database-url postgresql" in listed["entrypoint"]  # the job used the database it was given
    assert "working_dir" in listed["runtime_env"]  # the code went up with the job

    # the engine's metrics, found from the head the way Prometheus finds them
    def script_metric() -> float:
        return metrics_sum(deployment, "ray_v2s_segments_total", stage="script", status="done")

    cluster.wait(lambda: script_metric() >= segments, 60, "the v2s metrics")
    assert script_metric() == segments
    assert metrics_sum(deployment, "ray_v2s_tokens_total", stage="script", direction="input") > 0

    # `v2s status` against the cluster's database; without the bucket's credentials here it still shows the
    # stages, and says why it cannot count the shards
    blind = v2s(deployment, "status", job_id, "--database-url", deployment.database_url)
    assert "its manifest cannot be read" in blind and "NoCredentialsError" in blind
    bucket = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "V2S_S3_ENDPOINT_URL")}
    status = v2s(deployment, "status", job_id, "--database-url", deployment.database_url, env=bucket)
    rows = {line.split("│")[1].strip(): line for line in status.splitlines() if line.count("│") > 5}
    for stage in ("plot", "script", "distill", "export"):
        assert [c.strip() for c in rows[stage].split("│")[2:7]] == ["0", "0", str(segments), "0", "0"]
    assert f"({segments} records)" in status


def test_a_worker_killed_mid_annotate_loses_no_record_and_repeats_no_paid_call(deployment):
    cluster, out = deployment.cluster, "s3://films/out-node-loss"
    started = time.monotonic()
    job_id = submit(deployment, "s3://films/node-loss/", out)
    by_node = {cluster.node_id(w): w for w in deployment.workers}
    victim: list[RayNode] = []

    def annotating() -> bool:  # some scripts written, and a worker in the middle of annotate tasks
        done = deployment.sql(
            "SELECT count(*) FROM stage_runs WHERE job_id = :j AND stage = 'script' AND status = 'done'",
            j=job_id,
        )[0][0]
        if not done:
            return False
        running = cluster.state("tasks", name="annotate_segment", state="RUNNING")
        busy = Counter(t["node_id"] for t in running if t["node_id"] in by_node)
        if busy:
            victim.append(by_node[busy.most_common(1)[0][0]])
        return bool(busy)

    cluster.wait(annotating, 180, "annotate tasks running on a worker")
    victim_id = cluster.node_id(victim[0])
    killed_at = time.monotonic()
    cluster.kill_raylet(victim[0])
    info = wait_until_finished(deployment, job_id)

    segments = check_every_record_once(deployment, job_id, out)
    dead = [n for n in cluster.state("nodes") if n["node_id"] == victim_id]
    assert dead and dead[0]["state"] == "DEAD"
    assert victim[0].process.wait(timeout=30) != 0  # the node is gone, not restarted
    retried = [
        t
        for t in cluster.state("tasks", job_id=info["job_id"], name="annotate_segment")
        if t["attempt_number"] > 0
    ]
    assert retried, "no annotate task was run again: the kill interrupted nothing"

    # no paid call repeated: a call made twice is one whose first answer the kill cut off
    calls = deployment.simulator.calls_since(started, video_ids(deployment, job_id))
    first: dict[tuple, Call] = {}
    repeated = []
    for call in sorted(calls, key=lambda c: c.arrived):
        if call.stage == "distill":
            continue
        if (call.stage, call.key) in first:
            repeated.append(first[(call.stage, call.key)])
        else:
            first[(call.stage, call.key)] = call
    for call in repeated:
        assert call.arrived <= killed_at <= call.answered + 0.5, (call, killed_at)
    assert len(first) == 2 * segments  # a plot and a script call for every segment
    in_flight = [c for c in calls if c.stage == "distill" and c.arrived <= killed_at <= c.answered + 0.5]
    assert sum(c.stage == "distill" for c in calls) <= segments + len(in_flight)
