"""A process whose parent died (a Ray worker outliving its raylet) makes no more paid calls: the gateway's guard
ends it before the next HTTP attempt. Real processes, the real Gateway and SDK, over HTTP to the simulator.

The tree is reaper → parent → worker. The reaper is a child subreaper (prctl), so the worker becomes its child when
the parent is killed and its exit status can be read; the worker makes its second call once the reaper has reaped
the parent (a file says so)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from annotator.simulator.server import SimulatorServer
from tests.support.play import make_proxy, segment_provenance, small_screenplay
from workers.orphans import ORPHANED_EXIT, raylet_guard

WORKER = """
import os, sys, types
from pathlib import Path
from annotator.gateway import Gateway, Media
from annotator.stages import PlotReasoner, SegmentInput
from tests.support.gateway import MODELS, settings_for
from workers.orphans import OrphanGuard
from workers.storage import file_sha256

proxy = Path(sys.argv[2])
server = types.SimpleNamespace(base_url=sys.argv[1])
gateway = Gateway(settings_for(server), guard=OrphanGuard(os.getppid()))
def ask(index):
    segment = SegmentInput(index=index, start_s=0.0, end_s=30.0, media=Media(path=proxy, sha256=file_sha256(proxy)))
    return PlotReasoner(gateway, backend="gemini", model=MODELS["gemini"]).reason(segment, None)
print("first", ask(1).outcome, flush=True)
import time
while not os.path.exists(sys.argv[3]):  # the reaper's word that the parent is gone and reaped
    time.sleep(0.02)
print("second", ask(2).outcome, flush=True)
"""

PARENT = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:4], sys.argv[4] + ".go"],
                          stdout=open(sys.argv[4], "w"), stderr=subprocess.STDOUT)
print(worker.pid, flush=True)
time.sleep(600)
"""

REAPER = """
import ctypes, json, os, signal, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans below come to this process
worker_code, parent_code, base_url, proxy, log = sys.argv[1:6]
parent = subprocess.Popen([sys.executable, "-c", parent_code, worker_code, base_url, proxy, log],
                          stdout=subprocess.PIPE, text=True)
worker = int(parent.stdout.readline())
deadline = time.monotonic() + 60
while "first" not in open(log).read() and time.monotonic() < deadline:
    time.sleep(0.05)
parent.kill()
parent.wait()  # reaped: the worker has its new parent now (it may see its stdin close before it is reparented)
open(log + ".go", "w").close()
_, status = os.waitpid(worker, 0)  # the worker is this process's child now
print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}))
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Path:
    return make_proxy(tmp_path_factory.mktemp("proxy") / "seg1.mp4", segment_provenance(1, 0.0, 30.0))


def test_a_worker_whose_parent_died_exits_before_its_next_paid_call(proxy, tmp_path):
    log = tmp_path / "worker.log"
    log.touch()
    with SimulatorServer(small_screenplay()) as server:
        args = [WORKER, PARENT, server.base_url, str(proxy), str(log)]
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(REAPER), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(__file__).resolve().parents[2],
        )
        asked = [r for r in server.requests if r.endpoint == "generateContent"]
    output = log.read_text()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exit"] == ORPHANED_EXIT, output
    assert "first done" in output and "second" not in output, output
    assert "the raylet (pid" in output and "exits before its next model call" in output
    assert len(asked) == 1  # the first call only: the orphan paid for nothing after its parent died


def test_only_a_process_started_by_a_raylet_is_guarded():
    assert raylet_guard() is None  # pytest's parent is a shell or CI runner, not a raylet
