"""The stage store's part of a budget, on SQLite and PostgreSQL: a segment's recorded cost, and a stage given up
because its segment reached its ceiling (rejected with outcome `budget`; a done stage is left alone)."""

from __future__ import annotations

from profiles_db.stages import BUDGET, RunStatus, Stage, StageStore, StageUsage
from tests.support.db import make_video


def test_a_segment_cost_sums_its_stages_and_a_stage_is_given_up_for_budget(database):
    store = StageStore(database)
    first, second = make_video(database, scope="film", segments=2, job_id="job-b")
    assert store.claim(first, Stage.PLOT, "w1", "job-b")
    store.complete(first, Stage.PLOT, {"answer": {}}, StageUsage(model="m", cost_usd=0.25))
    assert store.claim(first, Stage.SCRIPT, "w1", "job-b")
    store.fail(first, Stage.SCRIPT, "invalid", outcome="invalid_output", usage=StageUsage(cost_usd=0.5))
    assert store.segment_cost(first) == 0.75 and store.segment_cost(second) == 0.0
    assert store.usage("job-b")["cost_usd"] == 0.75

    assert store.give_up_for_budget(first, Stage.SCRIPT, "budget: $0.75 of $0.5")
    assert store.result(first, Stage.SCRIPT)[0] == RunStatus.REJECTED
    assert store.statuses(first) == {Stage.PLOT: RunStatus.DONE, Stage.SCRIPT: RunStatus.REJECTED}
    assert [f.outcome for f in store.failures("job-b")] == [BUDGET]
    assert not store.give_up_for_budget(first, Stage.PLOT, "budget")  # done: nothing to give up
    assert not store.claim(first, Stage.SCRIPT, "w2", "job-b")  # a rejected stage is final
    assert store.reset_attempts("job-b") == 0  # a plain resume leaves it given up
