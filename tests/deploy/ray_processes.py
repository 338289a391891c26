"""A Ray cluster of separate processes on this machine, as `ray start` makes them on real nodes (or KubeRay in
pods): a head (`ray start --head`, dashboard, job server, token authentication on) and worker nodes
(`ray start --address …`), each with its own ports, temp dir, cache folder and custom resources.

Every process the cluster starts is in a process group of its own and is stopped by its PID at the end; nothing
else on the machine (another Ray of the test suite, another engineer's) is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.e2e import free_port

RAY = str(Path(sys.executable).with_name("ray"))
# Faster failure detection and metric reports than Ray's production defaults (a node is declared dead after
# ~15 s, metrics are reported every 10 s), so the node-loss scenario fits in the suite's time budget.
FAST_RAY = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "3",
    "RAY_metrics_report_interval_ms": "2000",
    "RAY_USAGE_STATS_ENABLED": "0",
}
OBJECT_STORE_BYTES = 150 * 1024 * 1024


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def descendants(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every live descendant of `root` (the start time guards against PID reuse)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append((int(entry), stat[1]))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _kill(processes: list[tuple[int, int]]) -> None:
    for pid, started in processes:
        stat = _proc_stat(pid)
        if stat is not None and stat[1] == started:  # still the process we saw, not a reused PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen
    temp_dir: Path
    metrics_port: int
    resources: dict[str, float] = field(default_factory=dict)

    def raylet_pid(self) -> int:
        pids = [pid for pid, _ in descendants(self.process.pid) if _comm(pid) == "raylet"]
        assert len(pids) == 1, f"{self.name}: raylets {pids}"
        return pids[0]

    @property
    def log(self) -> Path:
        return self.temp_dir / "ray-start.log"


class RayProcessCluster:
    """`start_head()`, `add_worker(...)`, then `wait_for_nodes(n)`; `shutdown()` stops every process it started."""

    def __init__(self, root: Path, node_env: dict[str, str], token: str) -> None:
        self.root, self.token = root, token
        # what every node's environment holds (on Kubernetes: the pod's env, Secrets included)
        self.node_env = {**node_env, **FAST_RAY, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        self.node_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{node_env.get('PATH', '')}"
        self.node_env.pop("RAY_ADDRESS", None)
        self.nodes: list[RayNode] = []
        self.gcs_port = free_port()
        self.dashboard_port = free_port()

    # -- processes ------------------------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], resources: dict[str, float], env: dict[str, str]) -> RayNode:
        temp_dir = self.root / name
        temp_dir.mkdir(parents=True)
        metrics = free_port()
        options = [
            "--node-ip-address=127.0.0.1",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={metrics}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]
        if resources:
            options.append(f"--resources={json.dumps(resources)}")
        with (temp_dir / "ray-start.log").open("wb") as log:
            process = subprocess.Popen(
                [RAY, "start", "--block", f"--temp-dir={temp_dir}", *args, *options],
                env={**self.node_env, **env},
                cwd=temp_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped by PID, nothing else
            )
        node = RayNode(name, process, temp_dir, metrics, resources)
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus: int = 0, env: dict[str, str] | None = None) -> RayNode:
        """Starts the head without waiting for it (workers may be started at once: they wait for its GCS)."""
        return self._start(
            "head",
            [
                "--head",
                f"--port={self.gcs_port}",
                f"--num-cpus={num_cpus}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={free_port()}",
                "--disable-usage-stats",
            ],
            {},
            env or {},
        )

    def add_worker(
        self, name: str, num_cpus: int, resources: dict[str, float], env: dict[str, str] | None = None
    ) -> RayNode:
        return self._start(
            name, [f"--address=127.0.0.1:{self.gcs_port}", f"--num-cpus={num_cpus}"], resources, env or {}
        )

    def wait_for_nodes(self, count: int, timeout_s: float = 120) -> None:
        self.wait(self._dashboard_answers, timeout_s, "the head's dashboard")
        self.wait(lambda: len(self.alive_nodes()) == count, timeout_s, f"{count} alive nodes")

    def kill_raylet(self, node: RayNode) -> int:
        """SIGKILL of the node's raylet, as when a machine or pod dies; `ray start --block` then stops the rest of
        the node's processes and exits. Returns the raylet's PID."""
        pid = node.raylet_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def shutdown(self) -> None:
        everything = [p for node in self.nodes for p in descendants(node.process.pid)]  # before they scatter
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)  # `ray start --block` stops its node's processes
        deadline = time.monotonic() + 15
        for node in self.nodes:
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)
        _kill(everything)  # whatever a stopped node left behind (workers, job drivers)
        # and any process started meanwhile: each of this cluster's processes names its temp dir (under root)
        deadline = time.monotonic() + 10
        while (left := self._own_processes()) and time.monotonic() < deadline:
            _kill(left)
            time.sleep(0.2)

    def _own_processes(self) -> list[tuple[int, int]]:
        marker = str(self.root).encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker in command and (stat := _proc_stat(int(entry))) is not None:
                found.append((int(entry), stat[1]))
        return found

    # -- the head's HTTP APIs (dashboard, Jobs, state), with the token --------------------------------------
    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def get(self, path: str, *, timeout: float = 10) -> object:
        request = urllib.request.Request(
            self.dashboard + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode())

    def _dashboard_answers(self) -> bool:
        try:
            self.get("/api/version")
            return True
        except (OSError, ValueError):
            return False

    def state(self, resource: str, **filters: str) -> list[dict]:
        """The state API (`/api/v0/nodes`, `/api/v0/tasks`…) with equality filters, as `ray list` uses it."""
        query = "".join(
            f"&filter_keys={k}&filter_predicates=%3D&filter_values={v}" for k, v in filters.items()
        )
        answer = self.get(f"/api/v0/{resource}?limit=10000&detail=true{query}", timeout=20)
        return answer["data"]["result"]["result"]

    def alive_nodes(self) -> list[dict]:
        try:
            return [n for n in self.state("nodes") if n["state"] == "ALIVE"]
        except (OSError, KeyError, ValueError):
            return []

    def node_id(self, node: RayNode) -> str:
        """The Ray node id of a worker, found by its custom resource."""
        marker = next(iter(node.resources))
        ids = [n["node_id"] for n in self.state("nodes") if marker in (n.get("resources_total") or {})]
        assert len(ids) == 1, ids
        return ids[0]

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Polls `predicate`; fails at once when the head stopped, or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            head = self.nodes[0]
            if head.process.poll() is not None:
                raise AssertionError(f"the Ray head exited: {head.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
            time.sleep(0.3)
