"""The budget decision of the Scheduler, without Ray or a database (workers/scheduler.py, workers/budget.py).

A fake ledger plays the database: every model stage's worst case (its bound) is $1.00 and it really costs
$0.40 once it has run. The promise: at every moment what was spent plus the bounds of the paid tasks in flight
stays within the budget; a task that does not fit waits for those in flight, and once none is left it pauses
the run (nothing paid starts after that, the records of what is finished still go); a segment whose recorded
cost reached its ceiling gives up the stage it was about to start."""

from __future__ import annotations

import pytest

from profiles_db.stages import RunStatus
from workers.budget import Budget
from workers.context import VideoSource
from workers.results import PreparedVideo, SegmentOutcome
from workers.scheduler import PAID, Scheduler, Task, TaskKind

BOUND, COST = 1.0, 0.4  # per model stage: the worst case reserved, and what it really costs


def _videos(*ids: str) -> list[VideoSource]:
    return [VideoSource(uri=f"/films/{v}.mp4", local_path=f"/films/{v}.mp4", video_id=v) for v in ids]


def _segments(video_id: str) -> list[int]:
    n = int(video_id[1:])  # v1 → 11, 12: two segments a video
    return [10 * n + 1, 10 * n + 2]


def _stages(task: Task) -> int:
    if task.kind == TaskKind.BATCH:
        return len(task.items)
    return 1 if task.kind == TaskKind.PLOT else 2  # an annotation: script and distillation


class FakeLedger:
    def __init__(self, spent_by_segment: dict[int, float] | None = None) -> None:
        self.by_segment: dict[int, float] = dict(spent_by_segment or {})

    def spent(self) -> float:
        return sum(self.by_segment.values())

    def segment_spent(self, segment_id: int) -> float:
        return self.by_segment.get(segment_id, 0.0)

    def bound(self, task: Task) -> float:
        return BOUND * _stages(task)

    def pay(self, task: Task) -> None:
        self.by_segment[task.segment_id] = self.segment_spent(task.segment_id) + COST * _stages(task)


class Run:
    """Plays the driver: submits what the scheduler says, answers the oldest task first, pays as it goes."""

    def __init__(self, videos, budget: Budget, ledger: FakeLedger | None = None, limit: int = 8) -> None:
        self.ledger = ledger or FakeLedger()
        self.s = Scheduler(
            videos,
            max_in_flight=limit,
            order=lambda scope, ids: [sid for v in sorted(ids) for sid in _segments(v)],
            budget=budget,
            ledger=self.ledger,
        )
        self.running: list[Task] = []
        self.log: list[Task] = []
        self.worst_exposure = 0.0  # the most that spent + bounds in flight ever was

    def submit(self) -> None:
        given_up = True
        while given_up:  # as the driver does: a give-up is answered at once and may free the next task
            given_up = False
            for task in self.s.next_tasks():
                self.log.append(task)
                if task.kind == TaskKind.GIVE_UP:
                    (item,) = task.items
                    rejected = SegmentOutcome(
                        segment_id=item.segment_id, status=RunStatus.REJECTED, error="budget"
                    )
                    self.s.finished(task, rejected)
                    given_up = True
                else:
                    self.running.append(task)
        in_flight = sum(self.ledger.bound(t) for t in self.running if t.kind in PAID)
        self.worst_exposure = max(self.worst_exposure, self.ledger.spent() + in_flight)

    def answer(self, task: Task) -> None:
        self.running.remove(task)
        if task.kind == TaskKind.PREPARE:
            result = PreparedVideo(video_id=task.video_id, ok=True, segments=_segments(task.video_id))
        elif task.kind == TaskKind.RECORDS:
            result = None
        else:
            self.ledger.pay(task)
            result = SegmentOutcome(segment_id=task.segment_id, status=RunStatus.DONE)
        self.s.finished(task, result)

    def drain(self) -> None:
        self.submit()
        while self.running:
            self.answer(self.running[0])
            self.submit()

    def paid(self) -> list[Task]:
        return [t for t in self.log if t.kind in PAID]


def test_a_budget_that_covers_everything_changes_nothing():
    free = Run(_videos("v1", "v2"), Budget())
    free.drain()
    capped = Run(_videos("v1", "v2"), Budget(limit_usd=100.0))
    capped.drain()
    assert capped.log == free.log and capped.s.summary.paused is None
    assert capped.ledger.spent() == pytest.approx(4 * 3 * COST)  # 4 segments, 3 stages each


def test_spent_plus_in_flight_never_passes_the_budget_and_the_run_pauses_with_records_of_what_is_done():
    # one task at a time: v1's chain and annotations ($2.40), its records, then v2's until nothing fits
    run = Run(_videos("v1", "v2"), Budget(limit_usd=3.7), limit=1)
    run.drain()
    summary = run.s.summary
    assert run.worst_exposure <= 3.7  # no paid task started that could have taken the job past its budget
    assert summary.paused == "budget"
    assert summary.budget["limit_usd"] == 3.7 and summary.budget["next_task_usd"] == pytest.approx(BOUND)
    assert summary.budget["spent_usd"] == pytest.approx(run.ledger.spent()) == pytest.approx(2.8)
    assert [(t.kind, t.segment_id) for t in run.paid()][-1] == (TaskKind.PLOT, 21)  # plot 22 did not fit
    assert run.s.idle and not run.running
    # the work paid for is not lost: v1's chain and annotations were finished, so its records were written
    assert [t.video_id for t in run.log if t.kind == TaskKind.RECORDS] == ["v1"]


def test_a_group_that_does_not_fit_waits_for_the_paid_tasks_in_flight_and_then_goes_whole():
    run = Run(_videos("v1", "v2"), Budget(limit_usd=4.0))  # two films, two scopes
    run.submit()
    run.answer(run.running[0])
    run.answer(run.running[0])  # both prepared: plots 11 and 21 go ($2 reserved)
    run.submit()
    assert sorted(t.segment_id for t in run.running) == [11, 21]
    run.answer(next(t for t in run.running if t.segment_id == 11))  # $0.40 spent
    run.submit()
    # plot 12 and annotation 11 became ready together ($3): $0.40 + $1 in flight + $3 > $4, so neither goes,
    # and the run is not paused: plot 21's real cost is not known yet
    assert [t.segment_id for t in run.running] == [21] and run.s.summary.paused is None
    run.answer(run.running[0])  # $0.80 spent, nothing in flight
    run.submit()
    # the first ready group in the queue goes whole: film 2's next plot with film 2's annotation
    started = sorted((t.kind, t.segment_id) for t in run.running)
    assert started == [(TaskKind.ANNOTATE, 21), (TaskKind.PLOT, 22)]
    run.drain()
    assert run.worst_exposure <= 4.0 and run.s.summary.paused == "budget"


def test_a_script_never_starts_after_the_next_plot_of_its_chain():
    # why tasks that became ready together start together: the script of segment 11 reads the memory plot 11
    # left; had plot 12 gone alone, the script would read plot 12's memory and differ from a run without budget
    for limit in (1.4, 2.0, 3.0, 3.4, 3.8, 4.2, 5.0, 6.0):
        run = Run(_videos("v1"), Budget(limit_usd=limit))
        run.drain()
        order = [(t.kind, t.segment_id) for t in run.paid()]
        if (TaskKind.PLOT, 12) in order:
            assert (TaskKind.ANNOTATE, 11) in order[: order.index((TaskKind.PLOT, 12)) + 2], (limit, order)
        assert run.worst_exposure <= limit


def test_a_budget_below_one_call_pays_for_nothing():
    run = Run(_videos("v1", "v2"), Budget(limit_usd=0.5))
    run.drain()
    assert run.paid() == [] and run.ledger.spent() == 0.0
    assert run.s.summary.paused == "budget" and run.s.summary.budget["spent_usd"] == 0.0
    assert [t.kind for t in run.log] == [TaskKind.PREPARE, TaskKind.PREPARE]


def test_a_segment_at_its_ceiling_gives_up_its_next_stage_and_its_chain_goes_on():
    # segment 11 already cost $1.00 (an earlier run's repairs): with a $0.90 ceiling its plot is not asked
    run = Run(_videos("v1"), Budget(segment_limit_usd=0.9), FakeLedger({11: 1.0}))
    run.drain()
    (given_up,) = [t for t in run.log if t.kind == TaskKind.GIVE_UP]
    assert given_up.segment_id == 11 and given_up.items[0].kind == TaskKind.PLOT
    assert 11 not in [t.segment_id for t in run.paid()]
    assert [(t.kind, t.segment_id) for t in run.paid()] == [(TaskKind.PLOT, 12), (TaskKind.ANNOTATE, 12)]
    assert run.s.summary.given_up_for_budget == [11]
    assert [t.video_id for t in run.log if t.kind == TaskKind.RECORDS] == ["v1"]  # stepped over, exported


def test_a_segment_that_passes_its_ceiling_mid_way_gets_no_further_stage():
    # plot 11 costs $0.40 ≥ the $0.30 ceiling: its script and distillation are given up, not asked
    run = Run(_videos("v1"), Budget(segment_limit_usd=0.3))
    run.drain()
    annotated = [t.segment_id for t in run.paid() if t.kind == TaskKind.ANNOTATE]
    assert annotated == []
    assert sorted(t.segment_id for t in run.log if t.kind == TaskKind.GIVE_UP) == [11, 12]
    assert {f.segment_id for f in run.s.summary.stage_failures} == {11, 12}
