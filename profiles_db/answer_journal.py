"""Paid answers the database could not take, kept on local disk until it can.

An answer is paid for the moment it arrives; the response cache in the job database is what keeps a resumed job
from paying for it again. When that database cannot take it (restarted, unreachable, its disk full), the answer
is appended here instead, fsync'd, and replayed into the cache before this process (or the next run on this
machine) asks anything again.

One file per process (`<pid>-<random>.jsonl`), so appends never interleave. A file is claimed for replay under
an exclusive `flock` and unlinked while still locked; a writer that was waiting for the lock sees its file gone
(`st_nlink == 0`) and starts a new one, so no line is written into a file already replayed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel

from annotator.schemas.cache import CachedAnswer, CacheKey

log = logging.getLogger(__name__)


class JournalLine(BaseModel):
    key: CacheKey
    entry: CachedAnswer


class AnswerJournal:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._own = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.jsonl"

    def append(self, key: CacheKey, entry: CachedAnswer) -> Path:
        """Keep one answer durably (written and fsync'd before this returns); the file it went to."""
        line = (JournalLine(key=key, entry=entry).model_dump_json() + "\n").encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self._own, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink == 0:  # replayed and unlinked while we waited: a new file
                    self._own = self.folder / f"{os.getpid()}-{secrets.token_hex(4)}.jsonl"
                    continue
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_folder(self.folder)  # the file's name is durable too
            return self._own

    def pending(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob("*.jsonl"))

    def replay(self, store: Callable[[CacheKey, CachedAnswer], None]) -> int:
        """Hand every kept answer to `store` (the database cache's put); each file is removed once all its
        answers are stored. A failing `store` leaves the file for the next replay. Returns answers stored."""
        stored = 0
        for path in sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else []:
            with _locked(path) as lines:
                if lines is None:
                    continue
                for raw in lines:
                    if raw.strip():
                        line = JournalLine.model_validate_json(raw)
                        store(line.key, line.entry)
                        stored += 1
                path.unlink()
        if stored:
            log.warning(
                "stored %d paid answer(s) kept in %s while the database was unavailable", stored, self.folder
            )
        return stored


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[list[str] | None]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # another process replayed it first
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:
            yield None
            return
        with os.fdopen(os.dup(fd), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        yield lines
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
