"""The batch store both simulated batch APIs share (Gemini's: batches.py, OpenAI's: openai_batches.py).

A batch is pending for `BatchPlay.pending_s` after its creation, running for `running_s` more, and then
settled, once and lazily (on the first read after that time, under the batch's lock): its items are answered
and it has succeeded. While it runs, its items finish one after another (spread over `running_s`, or
`item_s` each). A batch not done `expire_after_s` after its creation has expired, and a cancelled one stops:
an API that keeps partial results (OpenAI's: "partial results (if any) available in the output file") gets
the items finished by then answered; Gemini's batch has no output then. The store counts creations,
cancellations and deletions for tests.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from annotator.simulator.errors import invalid

ENV_PENDING_S = "V2S_SIM_BATCH_PENDING_S"
ENV_RUNNING_S = "V2S_SIM_BATCH_RUNNING_S"
ENV_EXPIRE_AFTER_S = "V2S_SIM_BATCH_EXPIRE_AFTER_S"
FINAL = ("succeeded", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class BatchPlay:
    """How long a batch waits: PENDING `pending_s`, then RUNNING `running_s`, then done; a batch not done
    `expire_after_s` after its creation (None: never) ends EXPIRED. Its items finish one after another while
    it runs: spread evenly over `running_s`, or, with `item_s`, `item_s` each (then a batch of n items runs
    n × `item_s`, and a smaller batch finishes sooner, as a provider's throughput would have it)."""

    pending_s: float = 0.2
    running_s: float = 0.3
    expire_after_s: float | None = None
    item_s: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchPlay:
        """V2S_SIM_BATCH_PENDING_S, V2S_SIM_BATCH_RUNNING_S, V2S_SIM_BATCH_EXPIRE_AFTER_S (seconds)."""
        env = os.environ if env is None else env

        def seconds(name: str) -> float | None:
            text = (env.get(name) or "").strip()
            if not text:
                return None
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{name}={text!r} is not a number of seconds") from None
            if value < 0:
                raise ValueError(f"{name}={text!r} is negative")
            return value

        pending, running = seconds(ENV_PENDING_S), seconds(ENV_RUNNING_S)
        return cls(
            pending_s=cls.pending_s if pending is None else pending,
            running_s=cls.running_s if running is None else running,
            expire_after_s=seconds(ENV_EXPIRE_AFTER_S),
        )


@dataclass
class BatchItem:
    key: str  # Gemini metadata `key` / file line `key`, OpenAI `custom_id`; else the 0-based position
    request: dict  # the request JSON as sent (GenerateContentRequest, or a chat-completions body)
    metadata: dict | None = None  # Gemini inlined-request metadata, echoed in its response


@dataclass
class Batch:
    id: str
    api: str  # "gemini" or "openai"
    model: str
    display_name: str
    items: list[BatchItem]
    created: float
    play: BatchPlay
    input_file: str | None = None  # files/ID (Gemini) or file-… (OpenAI)
    metadata: dict | None = None  # OpenAI batch metadata
    keeps_partial: bool = False  # an expired or cancelled batch answers the items finished by then (OpenAI)
    state: str = "pending"  # pending/running until settled: succeeded, failed, cancelled or expired
    ended: float | None = None
    results: list[dict] = field(default_factory=list)  # per answered item, in request order
    output_file: str | None = None
    error_file: str | None = None
    succeeded: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    @property
    def running_at(self) -> float:
        return self.created + self.play.pending_s

    @property
    def ready_at(self) -> float:
        if self.play.item_s is not None:
            return self.running_at + self.play.item_s * len(self.items)
        return self.running_at + self.play.running_s

    def finished_by(self, when: float) -> int:
        """How many items (in order) had finished at `when`: item i finishes at the i+1-th step of the run."""
        count = len(self.items)
        step = self.play.item_s if self.play.item_s is not None else self.play.running_s / max(count, 1)
        if when < self.running_at:
            return 0
        if step <= 0:
            return count
        return min(count, int((when - self.running_at) / step + 1e-9))

    def phase(self, now: float) -> str:
        if self.state in FINAL:
            return self.state
        return "pending" if now < self.running_at else "running"


class BatchStore:
    """Thread-safe batches of both APIs; `created`, `cancelled`, `deleted` count what a run did."""

    def __init__(self, play: BatchPlay | None = None) -> None:
        self.play = play or BatchPlay()
        self.batches: dict[str, Batch] = {}  # by bare id (Gemini: without "batches/")
        self.created = self.cancelled = self.deleted = 0
        self._lock = threading.Lock()

    def add(self, batch_id: str, api: str, model: str, display_name: str, items: list[BatchItem], **extra):
        batch = Batch(batch_id, api, model, display_name, items, time.time(), self.play, **extra)
        with self._lock:
            self.batches[batch.id] = batch
            self.created += 1
        return batch

    def get(self, name: str, api: str | None = None) -> Batch | None:
        with self._lock:
            batch = self.batches.get(name.removeprefix("batches/"))
        return batch if batch is not None and api in (None, batch.api) else None

    def of(self, api: str) -> list[Batch]:
        """The API's batches, newest first."""
        with self._lock:
            mine = [b for b in self.batches.values() if b.api == api]
        return sorted(mine, key=lambda b: b.created, reverse=True)

    def delete(self, batch: Batch) -> None:
        with self._lock:
            if self.batches.pop(batch.id, None) is not None:
                self.deleted += 1

    def settle(self, batch: Batch, run: Callable[[Batch, int], None], now: float | None = None) -> Batch:
        """Bring a batch up to date: EXPIRED past its expiry, answered (`run`, once) when its time has come."""
        with batch._lock:
            self._settle(batch, run, time.time() if now is None else now)
        return batch

    def cancel(self, batch: Batch, run: Callable[[Batch, int], None]) -> Batch:
        """Cancel a pending or running batch (only the items already finished are answered, where the API
        keeps partial results); a finished one stays as it is."""
        now = time.time()
        with batch._lock:
            self._settle(batch, run, now)
            if batch.state not in FINAL:
                self._stop(batch, run, "cancelled", now)
                with self._lock:
                    self.cancelled += 1
        return batch

    @classmethod
    def _settle(cls, batch: Batch, run: Callable[[Batch, int], None], now: float) -> None:
        if batch.state in FINAL:
            return
        expiry = batch.play.expire_after_s
        if expiry is not None and batch.created + expiry <= batch.ready_at:
            if now >= batch.created + expiry:
                cls._stop(batch, run, "expired", batch.created + expiry)
            return
        if now >= batch.ready_at:
            run(batch, len(batch.items))
            batch.state, batch.ended = "succeeded", time.time()

    @staticmethod
    def _stop(batch: Batch, run: Callable[[Batch, int], None], state: str, when: float) -> None:
        """End a batch before it finished: the items done by `when` keep their answers where the API keeps
        partial results (OpenAI); the others are never answered."""
        done = batch.finished_by(when) if batch.keeps_partial else 0
        if done:
            run(batch, done)
        batch.state, batch.ended = state, when


def jsonl_objects(data: bytes, name: str, shape: str) -> Iterator[tuple[str, dict]]:
    """(where, object) for every non-blank line of a batch input file; SimError 400 naming a line that is not a
    JSON object (`shape` says what one should look like), or a file without any."""
    found = False
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number} of {name}"
        try:
            entry = json.loads(line)
        except ValueError:
            raise invalid(f"{where} is not JSON") from None
        if not isinstance(entry, dict):
            raise invalid(f"{where} must be an object {shape}")
        found = True
        yield where, entry
    if not found:
        raise invalid(f"{name} holds no requests")
