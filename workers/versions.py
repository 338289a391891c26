"""Before a run writes anything: close the older versions of the sources that changed under the same name
(profiles_db/versions.py), so the output verification that follows takes their records out of the shards."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from profiles_db.db import Database
from profiles_db.versions import SupersededVersion, supersede_changed
from workers.context import VideoSource
from workers.storage import is_remote


def close_old_versions(db: Database, videos: list[VideoSource]) -> list[SupersededVersion]:
    """One transaction over the whole listing: either every old version is closed or none is."""
    current = {v.uri: v.video_id for v in videos}
    local = {v.uri: v.local_path for v in videos if not is_remote(v.local_path)}

    def describe(uri: str) -> str:
        path = local.get(uri)
        if path is None:
            return ""
        try:
            stat = os.stat(path)
        except OSError:
            return ""
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{stat.st_size:,} bytes, modified {modified}"

    with db.transaction() as s:
        return supersede_changed(s, current, now=datetime.now(UTC), describe=describe)
