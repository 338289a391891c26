"""Stage leases on SQLite and PostgreSQL: expiry and re-take, attempts, the final failure, resume's reset."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from profiles_db.models import StageRun
from profiles_db.stages import StageStore, utcnow
from tests.support.db import make_video


class Clock:
    """A clock the test moves on: leases expire without sleeping."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _run(db, segment_id: int, stage: str = "plot") -> StageRun:
    with db.sessions() as s:
        return s.scalar(select(StageRun).where(StageRun.segment_id == segment_id, StageRun.stage == stage))


def test_live_lease_blocks_others_and_expired_lease_is_taken_over(database):
    (seg,) = make_video(database, scope="s", segments=1, job_id="job-a")
    clock = Clock()
    store = StageStore(database, lease_s=30, max_attempts=3, clock=clock)
    assert store.try_claim(seg, "plot", "worker-1", "job-a") == ("claimed", 0.0)
    clock.advance(10)
    state, left = store.try_claim(seg, "plot", "worker-2", "job-a")
    assert state == "leased" and left == pytest.approx(20, abs=0.01)
    assert store.claim(seg, "plot", "worker-1")  # a retried task (same owner) takes its own lease back
    assert _run(database, seg).attempts == 1
    clock.advance(29.9)
    assert store.try_claim(seg, "plot", "worker-2", "job-a")[0] == "leased"  # renewed at 10 s: still live
    clock.advance(0.2)  # worker-1 "died": its lease runs out
    assert store.claim(seg, "plot", "worker-2", "job-a")
    run = _run(database, seg)
    assert (run.status, run.lease_owner, run.attempts) == ("running", "worker-2", 2)
    store.complete(seg, "plot", {"ok": True})
    assert store.try_claim(seg, "plot", "worker-3")[0] == "finished"


def test_a_stage_lost_max_attempts_times_fails_with_its_reason(database):
    (seg,) = make_video(database, scope="s", segments=1, job_id="job-a")
    clock = Clock()
    store = StageStore(database, lease_s=60, max_attempts=2, clock=clock)
    assert store.claim(seg, "script", "w1")
    clock.advance(61)
    assert store.claim(seg, "script", "w2")
    clock.advance(61)
    assert store.try_claim(seg, "script", "w3")[0] == "failed"
    run = _run(database, seg, "script")
    assert run.status == "failed" and run.outcome == "lost" and "lease of w2 expired" in run.error
    assert StageStore(database).progress("job-a") == {"script": {"failed": 1}}


def test_errors_use_up_attempts_and_resume_resets_only_the_jobs_failures(database):
    (seg_a,) = make_video(database, scope="a", segments=1, job_id="job-a")
    (seg_b,) = make_video(database, scope="b", segments=1, job_id="job-b")
    store = StageStore(database, lease_s=60, max_attempts=1)
    for seg in (seg_a, seg_b):
        assert store.claim(seg, "plot", "w")
        store.fail(seg, "plot", "model said no", outcome="server_error")
    assert store.try_claim(seg_a, "plot", "w")[0] == "failed"
    assert _run(database, seg_a).error == "model said no"
    assert store.reset_attempts("job-a") == 1
    assert store.claim(seg_a, "plot", "w")
    assert _run(database, seg_b).status == "failed"  # the other job's failure is left alone


def test_resume_skips_deterministic_blocks_unless_asked_and_picks_by_reason(database):
    segs = make_video(database, scope="a", segments=3, job_id="job-a")
    store = StageStore(database, lease_s=60, max_attempts=1)
    for seg, outcome in zip(segs, ("blocked", "timeout", "rate_limited"), strict=True):
        assert store.claim(seg, "plot", "w")
        store.fail(seg, "plot", f"{outcome} happened", outcome=outcome)
    assert store.reset_attempts("job-a", {"timeout"}) == 1  # only the timeout
    assert [_run(database, s).status for s in segs] == ["failed", "pending", "failed"]
    assert _run(database, segs[0]).error == "blocked happened"  # the reason stays until it runs again
    assert store.reset_attempts("job-a") == 1  # the default: everything but the deterministic block
    assert [_run(database, s).status for s in segs] == ["failed", "pending", "pending"]
    assert store.reset_attempts("job-a", {"blocked"}) == 1  # on purpose
    assert _run(database, segs[0]).status == "pending"


def test_give_up_a_plot_completes_its_chain_and_job_outcomes(database):
    segs = make_video(database, scope="a", segments=2, job_id="job-a")
    store = StageStore(database, lease_s=60, max_attempts=1)
    assert store.claim(segs[0], "plot", "w")
    store.complete(segs[0], "plot", {"answer": {}})
    assert store.claim(segs[1], "plot", "w")
    store.fail(segs[1], "plot", "HTTP 503", outcome="server_error")
    assert not store.chain_complete("a")
    assert store.job_outcome("job-a") == "failed"  # nothing exported
    assert store.find_segment(str(segs[1]), "job-a") == segs[1]
    assert store.give_up([store.find_segment(f"{_run_video(database, segs[1])}:2", "job-a")]) == [segs[1]]
    run = _run(database, segs[1])
    assert (run.status, run.outcome) == ("rejected", "given_up") and "HTTP 503" in run.error
    assert store.chain_complete("a")
    assert store.memory_gaps("a") == [(_run_video(database, segs[1]), 2)]
    with pytest.raises(ValueError, match="not a segment of job job-b"):
        store.find_segment(str(segs[0]), "job-b")


def _run_video(database, segment_id: int) -> str:
    from profiles_db.models import Segment

    with database.sessions() as s:
        return s.get(Segment, segment_id).video_id


def test_claim_waiting_waits_out_a_dead_workers_lease(database):
    (seg,) = make_video(database, scope="s", segments=1, job_id="job-a")
    store = StageStore(database, lease_s=0.4)
    assert store.claim(seg, "plot", "dead-worker")
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(store.claim_waiting(seg, "plot", "w2", poll_s=0.05)))
    waiter.start()
    waiter.join(timeout=10)
    assert got == ["claimed"]
    assert _run(database, seg).lease_owner == "w2"


def test_only_one_of_many_concurrent_claimers_wins(database):
    (seg,) = make_video(database, scope="s", segments=1, job_id="job-a")
    store = StageStore(database, lease_s=60)
    results: list[bool | Exception] = []

    def claim(owner: str) -> None:
        try:
            results.append(store.claim(seg, "distill", owner))
        except Exception as exc:  # a lost race must be a False, never an error
            results.append(exc)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [False] * 5 + [True]


def test_scope_segments_follow_the_cpm_order(database):
    late = make_video(database, scope="show", video_id="v-late", segments=2, episode=2)
    early = make_video(database, scope="show", video_id="v-early", segments=2, episode=1)
    loose = make_video(database, scope="show", video_id="v-none", segments=1, episode=None)
    store = StageStore(database)
    assert store.scope_segments("show", ["v-late", "v-early", "v-none"]) == loose + early + late
    assert store.scope_segments("show", ["v-late"]) == late
