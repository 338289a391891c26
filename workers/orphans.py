"""A Ray worker outliving its raylet must not pay for model calls.

When a node's raylet dies (OOM-killed, or the first process of a lost node to go), its worker processes live on for
a moment. A task in the middle of its stages goes on to the next model call, pays for it, and the answer has
nowhere to go: the node's results are lost with it and the task runs again elsewhere, where it pays again. Workers
are the raylet's children, so its death shows as a new parent PID; the gateway checks that before every HTTP
attempt (annotator.gateway.LimitedBackend's guard) and the orphan exits at once, as it would a moment later anyway.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
ORPHANED_EXIT = 70  # the worker's exit status when it stopped itself (EX_SOFTWARE)


class OrphanGuard:
    """Ends this process before a paid call once `parent` is no longer its parent."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __call__(self) -> None:
        if os.getppid() == self.parent:
            return
        log.error(
            "the raylet (pid %d) that started this worker is gone: the worker exits before its next model call; "
            "its task runs again on another node",
            self.parent,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(ORPHANED_EXIT)


def raylet_guard() -> OrphanGuard | None:
    """A guard for this process when a raylet started it (a Ray worker), else None (a driver, a local run)."""
    parent = os.getppid()
    try:
        name = Path(f"/proc/{parent}/comm").read_text().strip()
    except OSError:  # not Linux, or the parent is gone already: no fence
        return None
    return OrphanGuard(parent) if name == "raylet" else None
