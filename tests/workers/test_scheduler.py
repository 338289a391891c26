"""The run's policy without Ray: chains in memory order, back-pressure, blocked chains, export only when names
are final, cancel. The driver only submits what the Scheduler says (workers/driver.py)."""

from __future__ import annotations

from workers.context import VideoSource
from workers.results import PreparedVideo, SegmentOutcome
from workers.scheduler import Scheduler, Task, TaskKind


def _videos(*specs: tuple[str, str | None]) -> list[VideoSource]:
    return [
        VideoSource(uri=f"/films/{vid}.mp4", local_path=f"/films/{vid}.mp4", video_id=vid, scope=scope)
        for vid, scope in specs
    ]


def _segments(video_id: str) -> list[int]:
    """Two segments a video, ids derived from its name: v1 → 11, 12; v2 → 21, 22."""
    n = int(video_id[1:])
    return [10 * n + 1, 10 * n + 2]


def _order(scope: str, video_ids: list[str]) -> list[int]:
    return [sid for vid in sorted(video_ids) for sid in _segments(vid)]


class Run:
    """Plays the driver's part: takes the scheduler's tasks, answers each as a test says."""

    def __init__(self, videos, limit=8, **answers) -> None:
        self.events: list[tuple[str, dict]] = []
        self.s = Scheduler(
            videos, max_in_flight=limit, order=_order, emit=lambda k, d: self.events.append((k, d))
        )
        self.running: list[Task] = []
        self.log: list[Task] = []
        self.max_plots_in_flight_per_scope = 0
        self.plot_status = answers.get("plot_status", {})  # segment id → status

    def submit(self) -> list[Task]:
        new = self.s.next_tasks()
        self.running += new
        self.log += new
        scopes = [self.s.scope_of[t.video_id] for t in self.running if t.kind == TaskKind.PLOT]
        if scopes:
            most = max(scopes.count(scope) for scope in scopes)
            self.max_plots_in_flight_per_scope = max(self.max_plots_in_flight_per_scope, most)
        assert len(self.running) <= self.s.limit
        return new

    def answer(self, task: Task) -> None:
        self.running.remove(task)
        if task.kind == TaskKind.PREPARE:
            result = PreparedVideo(video_id=task.video_id, ok=True, segments=_segments(task.video_id))
        elif task.kind == TaskKind.RECORDS:
            result = None
        else:
            status = self.plot_status.get(task.segment_id, "done") if task.kind == TaskKind.PLOT else "done"
            result = SegmentOutcome(
                segment_id=task.segment_id, status=status, error=None if status == "done" else "boom"
            )
        self.s.finished(task, result)

    def drain(self) -> None:
        self.submit()
        while self.running:
            self.answer(self.running[0])
            self.submit()


def test_plots_run_in_memory_order_one_at_a_time_per_scope_and_records_follow_the_whole_chain():
    run = Run(_videos(("v1", "show"), ("v2", "show"), ("v3", None)))
    run.drain()
    plots = [t for t in run.log if t.kind == TaskKind.PLOT]
    show = [t.segment_id for t in plots if t.video_id in ("v1", "v2")]
    assert show == [11, 12, 21, 22]  # the scope's memory order
    assert [t.chain_index for t in plots if t.video_id in ("v1", "v2")] == [1, 2, 3, 4]
    assert run.max_plots_in_flight_per_scope == 1
    records = [t.video_id for t in run.log if t.kind == TaskKind.RECORDS]
    assert sorted(records) == ["v1", "v2", "v3"]
    last_show_plot = run.log.index(next(t for t in plots if t.segment_id == 22))
    first_show_record = min(
        run.log.index(t) for t in run.log if t.kind == TaskKind.RECORDS and t.video_id != "v3"
    )
    assert first_show_record > last_show_plot  # names are final before a record of the scope is built
    assert run.s.idle and run.s.summary.segments == 6 and run.s.summary.stage_failures == []
    assert ("chain", {"scope": "show", "segments": 4}) in run.events


def test_a_scope_waits_for_all_its_videos_but_not_for_other_scopes():
    run = Run(_videos(("v1", "show"), ("v2", "show"), ("v3", None)))
    first = run.submit()
    assert [t.kind for t in first] == [TaskKind.PREPARE] * 3
    run.answer(first[0])  # v1 prepared, v2 not yet: no plot of "show"
    run.answer(first[2])  # v3 (its own scope) prepared: its chain starts
    new = run.submit()
    assert [(t.kind, t.video_id) for t in new] == [(TaskKind.PLOT, "v3")]
    run.answer(first[1])
    assert [(t.kind, t.segment_id) for t in run.submit()] == [(TaskKind.PLOT, 11)]


def test_back_pressure_and_work_under_way_before_new_videos():
    run = Run(_videos(*((f"v{n}", None) for n in range(1, 6))), limit=2)
    first = run.submit()
    assert len(first) == 2 and run.s.next_tasks() == []  # two in flight at most
    run.answer(first[0])  # v1 prepared: its plot goes before preparing v3
    assert [(t.kind, t.video_id) for t in run.submit()] == [(TaskKind.PLOT, "v1")]
    run.drain()
    assert run.s.summary.segments == 10 and run.s.idle


def test_a_failed_plot_blocks_only_its_chain_and_a_given_up_plot_is_stepped_over():
    run = Run(_videos(("v1", "a"), ("v2", "b")), plot_status={11: "failed", 21: "rejected"})
    run.drain()
    summary = run.s.summary
    assert summary.blocked_chains == {"a": {"segment_id": 11, "error": "boom", "waiting": 1}}
    assert [f.segment_id for f in summary.stage_failures] == [11]
    plotted = [t.segment_id for t in run.log if t.kind == TaskKind.PLOT]
    assert 12 not in plotted and plotted.count(22) == 1  # a waits at 11; b went on past the given-up 21
    records = [t.video_id for t in run.log if t.kind == TaskKind.RECORDS]
    assert records == ["v2"]  # b's chain is complete; a's is not, so its video is not exported
    annotated = [t.segment_id for t in run.log if t.kind == TaskKind.ANNOTATE]
    assert 21 not in annotated and 22 in annotated


def test_a_failed_input_is_reported_and_its_scope_goes_on_without_it():
    run = Run(_videos(("v1", "show"), ("v2", "show")))
    tasks = run.submit()
    run.running.remove(tasks[0])
    run.s.finished(tasks[0], PreparedVideo(video_id="v1", ok=False, error="not a readable video"))
    run.drain()
    assert run.s.summary.failed_videos == {"/films/v1.mp4": "not a readable video"}
    assert [t.segment_id for t in run.log if t.kind == TaskKind.PLOT] == [21, 22]


def test_cancel_stops_new_work_and_lets_running_work_finish():
    run = Run(_videos(("v1", None), ("v2", None)), limit=8)
    tasks = run.submit()
    run.answer(tasks[0])
    plot = run.submit()
    run.s.cancel()
    assert run.s.next_tasks() == [] and not run.s.idle  # v2's prepare and v1's plot still run
    run.answer(tasks[1])
    run.answer(plot[0])
    assert run.s.next_tasks() == [] and run.s.idle and run.s.summary.cancelled
