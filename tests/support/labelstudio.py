"""A real Label Studio server for the round-trip test, from its own virtualenv.

`label-studio` pins Django, numpy and friends against ours, so it lives in `.venv-labelstudio` (or
$V2S_LABEL_STUDIO_VENV). `python -m tests.support.labelstudio` creates it (.ci/run does); without it the test
skips, unless V2S_REQUIRE_LABEL_STUDIO=1, where it fails. The server runs on a free loopback port with SQLite
in a temporary folder, a user and a legacy API token made at start, no browser, no error reporting, no
analytics and no version check, and local-file serving of one folder (the proxies' root).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
VERSION = "1.23.2"
USER = "reviewer@example.com"
START_TIMEOUT_S = 240.0  # the first start migrates its SQLite database (~45 s on the 2-core CI machine)


def venv() -> Path:
    return Path(os.environ.get("V2S_LABEL_STUDIO_VENV") or REPO / ".venv-labelstudio")


def executable() -> Path | None:
    exe = venv() / "bin" / "label-studio"
    return exe if exe.is_file() else None


def require() -> Path:
    """The `label-studio` executable, or a skip (a failure when V2S_REQUIRE_LABEL_STUDIO=1) naming the fix."""
    exe = executable()
    if exe is None:
        message = (
            f"no Label Studio virtualenv at {venv()}: create it with `python -m tests.support.labelstudio` "
            f"(label-studio=={VERSION} in its own venv, its pins clash with ours)"
        )
        if os.environ.get("V2S_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(f"V2S_REQUIRE_LABEL_STUDIO=1 but {message}")
        pytest.skip(message)
    return exe


@dataclass
class Server:
    url: str
    token: str
    user: str
    document_root: Path
    process: subprocess.Popen
    log: Path

    def wait(self) -> Server:
        """Block until the server answers (it can start while the caller does something else)."""
        _wait(self.url, self.process, self.log)
        return self


@contextmanager
def label_studio(data_dir: Path, document_root: Path, port: int) -> Iterator[Server]:
    """A started server (call `wait()` before using it), stopped on exit with everything it started."""
    exe = require()
    token = "v2s-test-token-0123456789"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(
        {
            "HOME": str(data_dir),
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "DJANGO_DB": "sqlite",
        }
    )
    args = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    args += ["--host", f"http://127.0.0.1:{port}", "--data-dir", str(data_dir / "ls")]
    args += ["--username", USER, "--password", "v2s-test-password", "--user-token", token]
    args += ["--enable-legacy-api-token"]
    log = (data_dir / "label-studio.log").open("w")
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        yield Server(url, token, USER, document_root, process, data_dir / "label-studio.log")
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and the workers it started, nothing else
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _wait(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"label-studio exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1.0)
    raise RuntimeError(
        f"label-studio did not answer at {url} in {START_TIMEOUT_S:.0f} s: {log.read_text()[-3000:]}"
    )


def create_venv() -> Path:
    """Make the virtualenv with label-studio (what .ci/run calls); a no-op when it is there already."""
    if executable() is not None:
        return venv()
    subprocess.run([sys.executable, "-m", "venv", str(venv())], check=True)
    pip = [str(venv() / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"label-studio=={VERSION}"], check=True)
    return venv()


if __name__ == "__main__":
    print(create_venv())
