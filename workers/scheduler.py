"""What runs next: the run's policy, kept apart from Ray (the driver submits what this says and reports back).

- Videos are prepared first in, first out; a scope's plot chain is planned as soon as ALL of that scope's
  videos are prepared (its memory order is only known then), not when every video of the job is.
- A scope's plots run strictly one after another (segment n+1's plot reads the memory segment n wrote); the
  next plot of a chain goes to the front of the queue. Chains of different scopes, and the script/distill of
  segments whose plot is done, run side by side. A failed plot stops its chain (reported as blocked; other
  scopes go on, resume continues it); a plot given up on purpose is stepped over.
- A scope's videos are exported only once its whole chain is done or given up, so every name is final when
  its records are built (a name learned in the last segment reaches the first segment's record).
- Back-pressure: at most `max_in_flight` tasks at a time; work under way (which frees memory and finishes
  videos) goes before new videos. A cancel stops new work; what runs finishes.
- Stages at the batch tier (`batch_stages`) run as provider batches, one task per batch. The plot chains go in
  *waves*: a wave holds the next plot of every chain whose previous plot is applied (so never two of one
  scope), and goes once the previous wave is back and no video is left to prepare (or it is full); a scope's
  segment k is never reasoned before k−1 is applied. Scripts and distillations whose input is ready gather in
  a pool that goes as one batch whenever no batch of that stage is out.
- Budget (`Budget`, workers/budget.py): paid tasks (plots, annotations, batches) start only when the job's
  recorded spend + the bounds of the paid tasks in flight + their own bounds stay within the budget. The
  ready paid tasks of one scope start together or not at all (`_group`: a budget must not change what memory
  a script reads). When they do not fit, nothing new that is paid starts: the scheduler waits for the paid
  tasks in flight (their real cost is usually far below their bound, so the group may fit then); once none
  is in flight and it still does not fit, the run is *paused*: no new paid work, what is done is exported,
  the job ends `paused`. A segment whose recorded cost has reached its ceiling gives up the stage it was about
  to start (a GIVE_UP task: the driver marks it rejected with outcome `budget`), rather than paying for it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from profiles_db.stages import RunStatus, Stage
from workers.budget import Budget
from workers.context import VideoSource
from workers.results import PreparedVideo, SegmentOutcome


class TaskKind(StrEnum):
    PREPARE = "prepared"  # the names are the events the driver reports, as the CLI's progress bars know them
    PLOT = "plot"
    ANNOTATE = "annotate"
    RECORDS = "records"
    BATCH = "batch"  # one provider batch of a stage's requests (its items are plot or annotate tasks)
    # a stage not started because its segment reached its cost ceiling (items: the task it replaces); the
    # driver marks it rejected with outcome `budget`, at once, and reports a rejected SegmentOutcome back
    GIVE_UP = "give_up"


PAID = frozenset({TaskKind.PLOT, TaskKind.ANNOTATE, TaskKind.BATCH})  # the tasks that call a model


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    video_id: str = ""
    segment_id: int | None = None  # plot and annotate
    chain_index: int | None = None  # plot: 1-based position in the scope's chain
    stage: Stage | None = None  # batch: its stage; annotate: script only when the distill goes in a batch
    items: tuple[Task, ...] = ()  # batch: the plot or annotate task of each of its segments
    wave: int | None = None  # a plot batch: its wave number


@dataclass
class RunSummary:
    videos: int = 0
    failed_videos: dict[str, str] = field(default_factory=dict)  # uri → why
    segments: int = 0
    stage_failures: list[SegmentOutcome] = field(default_factory=list)
    records_written: int = 0
    cancelled: bool = False
    interrupted: bool = False  # Ctrl-C: no new work was started after it; what ran finished and was kept
    # scope → the segment its memory chain waits at, and why (a failed plot: resume continues from there)
    blocked_chains: dict[str, dict] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)  # what the output verification found and mended
    # older versions of changed sources closed by this run (profiles_db.versions.SupersededVersion, as dicts)
    superseded: list[dict] = field(default_factory=list)
    # "budget" when the run stopped at its budget (the next paid task did not fit); then `budget` says how:
    # {limit_usd, spent_usd, next_task_usd (that task's bound), held (paid tasks not started)}
    paused: str | None = None
    budget: dict = field(default_factory=dict)
    given_up_for_budget: list[int] = field(default_factory=list)  # segments that reached their ceiling


@dataclass
class _Chain:
    """One scope's plot chain: its segments in the CPM's order, and how far it has got."""

    segments: list[tuple[str, int]]  # (video_id, segment_id)
    video_ids: list[str]
    position: int = 0
    complete: bool = False  # every plot done or given up: names are final, videos may be exported


Order = Callable[[str, list[str]], list[int]]  # (scope, its prepared video ids) → segment ids in memory order
Emit = Callable[[str, dict], None]


class Ledger(Protocol):
    """The facts a budget decision needs, read by the driver (from the database); the decision is ours."""

    def spent(self) -> float:
        """Dollars the job's stages have recorded so far, over all its runs."""

    def segment_spent(self, segment_id: int) -> float:
        """Dollars recorded for one segment's stages."""

    def bound(self, task: Task) -> float:
        """The most the model calls of a paid task can cost (workers.budget.call_bound per call)."""


class Scheduler:
    def __init__(
        self,
        videos: Iterable[VideoSource],
        *,
        max_in_flight: int,
        order: Order,
        emit: Emit | None = None,
        prepare_only: bool = False,
        batch_stages: Iterable[Stage] = (),
        batch_max_items: int = 1000,
        budget: Budget | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        """`prepare_only`: split the videos and stop there (`v2s plan`); no chain is planned, nothing else runs.
        `batch_stages`: the stages sent as provider batches of at most `batch_max_items` requests.
        `budget` caps what the job spends, `ledger` says what it has spent and what a task may cost."""
        self.videos = {v.video_id: v for v in videos}
        self.limit = max(1, max_in_flight)
        self.order, self.emit = order, emit or (lambda kind, data: None)
        self.prepare_only = prepare_only
        self.summary = RunSummary(videos=len(self.videos))
        self.scope_of = {v.video_id: v.scope or v.video_id for v in self.videos.values()}
        self.unprepared: dict[str, int] = defaultdict(int)  # scope → its videos not yet prepared
        for scope in self.scope_of.values():
            self.unprepared[scope] += 1
        self.ready: dict[str, list[str]] = defaultdict(list)  # scope → prepared video ids with work
        # scope → videos done before whose records this output lacks (written once the scope's chain is done)
        self.records_only: dict[str, list[str]] = defaultdict(list)
        self.segments_of: dict[str, list[int]] = {}  # video id → its segment ids
        self.remaining: dict[str, int] = defaultdict(int)  # video id → segments not yet annotated
        self.chains: dict[str, _Chain] = {}
        self.touched: list[str] = []  # videos this run worked on (settled at the end)
        self.to_prepare = deque(self.videos)
        self.queue: deque[Task] = deque()
        self.in_flight = 0
        self.preparing = 0
        self.batching = Batching(frozenset(batch_stages), batch_max_items)
        self.budget = budget if budget is not None and budget.active else None
        if self.budget is not None and ledger is None:
            raise ValueError("a budget needs a ledger to read what was spent")
        self.ledger = ledger
        self.reserved: dict[Task, float] = {}  # paid tasks in flight → the bound reserved for each

    # -- what runs next ------------------------------------------------------------------------------
    def next_tasks(self) -> list[Task]:
        """The tasks to submit now (each counts against max_in_flight until `finished` is told of it)."""
        out: list[Task] = []
        if not self.summary.cancelled and not self.summary.paused:
            all_prepared = not self.to_prepare and self.preparing == 0
            self.queue.extendleft(reversed(self.batching.due(all_prepared)))
        spent: list[float] = []  # read once per call, and only when a paid task asks
        while self.in_flight < self.limit and not self.summary.cancelled and (self.queue or self.to_prepare):
            if self.queue:
                task = self.queue[0]
                if task.kind in PAID and self.budget is not None:
                    if self.summary.paused:  # queued by work that came back after the pause: left for resume
                        self.queue.popleft()
                        continue
                    group = self._group(task)
                    given_up = self._over_ceiling(group)
                    if given_up:  # answered at once by the driver, which then asks again
                        self.in_flight += len(given_up)
                        return out + given_up
                    verdict = self._afford(group, spent)
                    if verdict == "wait":  # the paid tasks in flight may leave room once their cost is known
                        break
                    if verdict == "go":
                        for member in group:
                            self.queue.remove(member)
                        out += group
                        self.in_flight += len(group)
                    continue
                out.append(self.queue.popleft())
            elif self.summary.paused:
                break
            else:
                out.append(Task(TaskKind.PREPARE, self.to_prepare.popleft()))
                self.preparing += 1
            self.in_flight += 1
        return out

    def _group(self, head: Task) -> list[Task]:
        """The paid tasks that start together under a budget: every queued one of the head's scope (up to the
        free slots), since tasks that became ready together must start together. A script reads its scope's
        memory when it starts, so if the budget let the chain's next plot go and held the script back, the
        script would read a memory the next plot had changed: its answer, and the record, would differ from a
        run without a budget. A batch is a group of its own."""
        if head.kind == TaskKind.BATCH:
            return [head]
        scope = self.scope_of[head.video_id]
        mine = [t for t in self.queue if t.kind in (TaskKind.PLOT, TaskKind.ANNOTATE)]
        return [t for t in mine if self.scope_of[t.video_id] == scope][: self.limit - self.in_flight]

    def _over_ceiling(self, group: list[Task]) -> list[Task]:
        """GIVE_UP tasks for the segments of `group` whose recorded cost reached the per-segment ceiling (their
        task leaves the queue, or a batch goes on without them); empty when none did."""
        ceiling = self.budget.segment_limit_usd
        if ceiling is None:
            return []
        out = []
        for task in group:
            items = task.items if task.kind == TaskKind.BATCH else (task,)
            over = [item for item in items if self.ledger.segment_spent(item.segment_id) >= ceiling]
            if not over:
                continue
            at = self.queue.index(task)
            del self.queue[at]
            rest = tuple(item for item in items if item not in over)
            if task.kind == TaskKind.BATCH:
                if rest:
                    self.queue.insert(at, replace(task, items=rest))
                else:
                    self.batching.returned(task.stage)  # nothing of it goes: the next pool of its stage may
            stage = task.stage if task.kind == TaskKind.BATCH else None
            for item in over:
                self.summary.given_up_for_budget.append(item.segment_id)
                self.emit("budget", {"segment_id": item.segment_id, "ceiling_usd": ceiling})
                out.append(Task(TaskKind.GIVE_UP, item.video_id, item.segment_id, stage=stage, items=(item,)))
        return out

    def _afford(self, group: list[Task], spent: list[float]) -> str:
        """ "go" (the group's bounds are reserved), "wait" for the paid tasks in flight, or "pause" (the run
        stops here: nothing paid is in flight, so nothing will make room)."""
        limit = self.budget.limit_usd
        if limit is None:
            return "go"
        if not spent:
            spent.append(self.ledger.spent())
        costs = {task: self.ledger.bound(task) for task in group}
        in_flight = sum(self.reserved.values())
        if spent[0] + in_flight + sum(costs.values()) <= limit:
            self.reserved.update(costs)
            return "go"
        if self.reserved:
            return "wait"
        self._pause(spent[0], sum(costs.values()))
        return "pause"

    def _pause(self, spent: float, next_cost: float) -> None:
        """Nothing paid is in flight and the next paid tasks do not fit: no new paid work from now on. The
        records of what is finished still go (free tasks stay queued); the rest waits for a resume."""
        held = sum(1 for t in self.queue if t.kind in PAID) + sum(
            len(v) for v in self.batching.waiting.values()
        )
        self.summary.paused = "budget"
        self.summary.budget = {
            "limit_usd": self.budget.limit_usd,
            "spent_usd": round(spent, 6),
            "next_task_usd": round(next_cost, 6),
            "held": held,
        }
        self.queue = deque(t for t in self.queue if t.kind not in PAID)
        self.to_prepare.clear()
        self.batching.clear()
        self.emit("paused", dict(self.summary.budget))

    def cancel(self) -> None:
        """No new work from now on; what is running finishes and is kept."""
        if not self.summary.cancelled:
            self.summary.cancelled = True
            self.queue.clear()
            self.to_prepare.clear()
            self.batching.clear()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and (self.summary.cancelled or not (self.queue or self.to_prepare))

    # -- what came back ------------------------------------------------------------------------------
    def finished(self, task: Task, result: PreparedVideo | SegmentOutcome | None = None) -> None:
        self.in_flight -= 1
        self.reserved.pop(task, None)  # its real cost is in the database now (the ledger reads it)
        if task.kind == TaskKind.GIVE_UP:  # as if the task it replaced had come back rejected
            (item,) = task.items
            stage = task.stage or (Stage.PLOT if item.kind == TaskKind.PLOT else None)
            self._item_finished(item, result, stage)
            return
        if task.kind == TaskKind.RECORDS:
            self.emit(task.kind, {"video_id": task.video_id})
            return
        if task.kind == TaskKind.BATCH:  # its items, one by one, as if each had been a task of its own
            self.batching.returned(task.stage)
            outcomes = {o.segment_id: o for o in result}
            for item in task.items:
                self._item_finished(item, outcomes[item.segment_id], task.stage)
            return
        if task.kind == TaskKind.PREPARE:
            self.preparing -= 1
            self.emit(task.kind, result.model_dump(mode="json"))
            self._prepared(task.video_id, result)
            return
        self._item_finished(task, result, task.stage or (Stage.PLOT if task.kind == TaskKind.PLOT else None))

    def _item_finished(self, task: Task, result: SegmentOutcome, stage: Stage | None) -> None:
        """A plot, a script-only annotation, a script or a distillation (alone or as a batch item) came back."""
        if task.kind == TaskKind.PLOT:
            self.emit(task.kind, result.model_dump(mode="json"))
            self._plotted(task, result)
            return
        if stage == Stage.SCRIPT and result.status == RunStatus.DONE:  # its distillation is still to come
            self._distill(task)
            return
        self.emit(TaskKind.ANNOTATE, result.model_dump(mode="json"))
        if result.status != RunStatus.DONE:
            self.summary.stage_failures.append(result)
        self.remaining[task.video_id] -= 1
        self._export_when_ready(task.video_id)

    def _annotate(self, video_id: str, segment_id: int) -> None:
        """Script and distillation of a segment whose plot is done: a batch item, or a task that writes the
        script (and distils it too, unless the distillation goes in a batch)."""
        if Stage.SCRIPT in self.batching.stages:
            self.batching.add(Stage.SCRIPT, Task(TaskKind.ANNOTATE, video_id, segment_id, stage=Stage.SCRIPT))
            return
        script_only = Stage.SCRIPT if Stage.DISTILL in self.batching.stages else None
        self.queue.append(Task(TaskKind.ANNOTATE, video_id, segment_id, stage=script_only))

    def _distill(self, task: Task) -> None:
        if Stage.DISTILL in self.batching.stages:
            self.batching.add(Stage.DISTILL, Task(TaskKind.ANNOTATE, task.video_id, task.segment_id))
        else:  # the task finds the script done and distils it
            self.queue.append(Task(TaskKind.ANNOTATE, task.video_id, task.segment_id))

    def _prepared(self, video_id: str, result: PreparedVideo) -> None:
        scope = self.scope_of[video_id]
        if not result.ok:
            self.summary.failed_videos[self.videos[video_id].uri] = result.error or "failed"
        elif not result.skipped:
            self.segments_of[video_id] = result.segments
            self.ready[scope].append(video_id)
            self.remaining[video_id] += len(result.segments)
            self.summary.segments += len(result.segments)
            self.touched.append(video_id)
        elif result.records_missing:
            self.records_only[scope].append(video_id)
        self.unprepared[scope] -= 1
        if self.unprepared[scope] == 0 and not self.prepare_only:
            self._plan_chain(scope)

    def _plan_chain(self, scope: str) -> None:
        video_ids = self.ready.pop(scope, [])
        records_only = self.records_only.pop(scope, [])
        if not video_ids:
            for video_id in records_only:  # nothing of the scope to annotate: its names are final already
                self.queue.append(Task(TaskKind.RECORDS, video_id))
            return
        owner = {sid: vid for vid in video_ids for sid in self.segments_of[vid]}
        ordered = self.order(scope, video_ids)
        # a done video's records wait for the scope's chain like the others': a later plot may name someone
        chain = _Chain(segments=[(owner[sid], sid) for sid in ordered], video_ids=video_ids + records_only)
        self.chains[scope] = chain
        self.emit("chain", {"scope": scope, "segments": len(chain.segments)})
        if chain.segments:
            self._plot(self._next_plot(scope), front=False)
        else:
            chain.complete = True

    def _next_plot(self, scope: str) -> Task:
        chain = self.chains[scope]
        video_id, segment_id = chain.segments[chain.position]
        chain.position += 1
        return Task(TaskKind.PLOT, video_id, segment_id, chain_index=chain.position)

    def _plot(self, task: Task, *, front: bool) -> None:
        if Stage.PLOT in self.batching.stages:
            self.batching.add(Stage.PLOT, task)
        elif front:
            self.queue.appendleft(task)
        else:
            self.queue.append(task)

    def _plotted(self, task: Task, result: SegmentOutcome) -> None:
        scope = self.scope_of[task.video_id]
        if result.status == RunStatus.DONE:
            self._annotate(task.video_id, task.segment_id)
            self._advance(scope)
        elif result.status == RunStatus.REJECTED:  # given up on purpose: no record, the chain goes on
            self.remaining[task.video_id] -= 1
            self._advance(scope)
        else:  # the chain stops here; later segments would be reasoned over a memory with a hole
            chain = self.chains[scope]
            self.summary.stage_failures.append(result)
            self.summary.blocked_chains[scope] = {
                "segment_id": result.segment_id,
                "error": result.error or f"plot is {result.status}",
                "waiting": len(chain.segments) - chain.position,
            }
            self.emit("blocked", {"scope": scope, **self.summary.blocked_chains[scope]})

    def _advance(self, scope: str) -> None:
        chain = self.chains[scope]
        if chain.position < len(chain.segments):  # the next plot reads the memory this one wrote
            if not self.summary.cancelled:
                self._plot(self._next_plot(scope), front=True)
            return
        chain.complete = True
        for video_id in chain.video_ids:
            self._export_when_ready(video_id)

    def _export_when_ready(self, video_id: str) -> None:
        """Records of a video once its scope's chain is complete and all its annotations returned."""
        chain = self.chains[self.scope_of[video_id]]
        if chain.complete and self.remaining[video_id] == 0 and not self.summary.cancelled:
            self.queue.append(Task(TaskKind.RECORDS, video_id))


class Batching:
    """The batch-tier stages' waiting items, and when they go: one batch per stage out at a time."""

    def __init__(self, stages: frozenset[Stage], max_items: int) -> None:
        self.stages, self.max_items = stages, max(1, max_items)
        self.waiting: dict[Stage, list[Task]] = {stage: [] for stage in stages}
        self.out: set[Stage] = set()
        self.waves = 0

    def add(self, stage: Stage, item: Task) -> None:
        self.waiting[stage].append(item)

    def returned(self, stage: Stage | None) -> None:
        self.out.discard(stage)

    def clear(self) -> None:
        for items in self.waiting.values():
            items.clear()

    def due(self, all_prepared: bool) -> list[Task]:
        """The batches to submit now. A plot wave waits until every video is prepared (so that every chain's
        first plot is in the first wave) unless it is full already."""
        out = []
        for stage, items in self.waiting.items():
            if not items or stage in self.out:
                continue
            if stage == Stage.PLOT and not all_prepared and len(items) < self.max_items:
                continue
            taken, self.waiting[stage] = items[: self.max_items], items[self.max_items :]
            wave = None
            if stage == Stage.PLOT:
                self.waves += 1
                wave = self.waves
            out.append(Task(TaskKind.BATCH, stage=stage, items=tuple(taken), wave=wave))
            self.out.add(stage)
        return out
