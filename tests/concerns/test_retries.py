"""Retried attempts per queue: the per-scrape arithmetic of concerns/retries.py, without Redis.

tests/concerns/test_retries_rq_workers.py counts what real workers of each RQ version with Retry do.
"""

from __future__ import annotations

from rq_exporter_ng.concern import Given
from rq_exporter_ng.concerns.failed_queue import FailedQueue, FailedQueueResult
from rq_exporter_ng.concerns.retries import (
    NAME,
    Retries,
    RetriesOptions,
    RetryCounts,
    Seen,
    attempt_increases,
    final_failures,
)
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.concerns.timing.reads import NOTHING_ENDED, TimingResult
from rq_exporter_ng.concerns.timing.records import Ended, Outcome
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.snapshot import QueueState, Snapshot, WorkerState


def worker(name: str, failed: int | None, *queues: str, successful: int | None = 0,
           working: float | None = 0.0, version: str | None = "2.12.0") -> WorkerState:
    return WorkerState(name, queues or ("q",), "idle", successful_jobs=successful, failed_jobs=failed,
                       working_seconds=working, rq_version=version)


def test_the_first_scrape_is_a_baseline():
    memory, grown = attempt_increases(None, [worker("a", 7)])
    assert memory == {"a": Seen(7, 0, 0.0)} and not grown


def test_increases_of_workers_of_one_queue_count_for_that_queue():
    known = {"a": Seen(7, 0, 0.0), "b": Seen(1, 0, 0.0)}
    memory, grown = attempt_increases(known, [worker("a", 10, "q"), worker("b", 3, "r")])
    assert grown == {"q": 3, "r": 2}
    assert memory["a"].failed == 10


def test_a_worker_of_several_queues_is_remembered_but_not_attributed():
    known = {"a": Seen(0, 0, 0.0)}
    memory, grown = attempt_increases(known, [worker("a", 5, "q", "r")])
    assert not grown and memory["a"].failed == 5


def test_a_worker_first_seen_later_counts_from_zero():
    _, grown = attempt_increases({"old": Seen(1, 0, 0.0)}, [worker("old", 1), worker("new", 4)])
    assert grown == {"q": 4}


def test_a_worker_whose_counters_went_down_is_a_new_one_of_the_same_name():
    before = {"a": Seen(5, 100, 60.0)}
    _, grown = attempt_increases(before, [worker("a", 2, successful=3, working=1.0)])
    assert grown == {"q": 2}
    # only the working time went down: still a restart
    _, grown = attempt_increases(before, [worker("a", 6, successful=100, working=2.0)])
    assert grown == {"q": 6}


def test_an_unreadable_count_keeps_the_memory_and_counts_nothing():
    known = {"a": Seen(5, 0, 0.0)}
    memory, grown = attempt_increases(known, [worker("a", None)])
    assert memory == known and not grown
    # unreadable when first seen: a baseline once readable (its history is not this scrape's)
    memory, grown = attempt_increases({}, [worker("b", None)])
    memory, grown = attempt_increases(memory, [worker("b", 9)])
    assert not grown and memory["b"].failed == 9


def test_final_failures_are_the_failed_jobs_and_the_growth_of_those_kept_forever():
    outcome = Outcome((Ended("q", "failed", b"1"), Ended("q", "finished", b"2"), Ended("r", "failed", b"3")),
                      (("q", "failed", 2), ("q", "finished", 5)), ())
    assert final_failures(outcome) == {"q": 3, "r": 1}


def test_retries_are_failed_attempts_less_final_failures():
    counts = RetryCounts()
    counts.queues.update(["q", "r", "s", "t"])
    counts.record({"q": 5, "r": 1}, {"q": 2, "r": 1, "s": 4})
    assert counts.rows() == [(("q",), 3), (("r",), 0), (("s",), 0), (("t",), 0)]


def test_a_failure_seen_before_its_attempt_is_carried_one_scrape():
    counts = RetryCounts()
    counts.record({"q": 1}, {"q": 2})  # the second failure's worker count not read yet
    counts.record({"q": 3}, {})  # its count now, with two retries
    assert counts.counts["q"] == 2
    counts.record({"q": 1}, {})  # the shortfall is kept for one scrape only
    assert counts.counts["q"] == 3


def test_a_shortfall_is_not_carried_past_the_next_scrape():
    counts = RetryCounts()
    counts.record({}, {"q": 5})  # failures of workers of several queues
    counts.record({}, {"q": 1})
    counts.record({"q": 2}, {})
    assert counts.counts["q"] == 1  # only the last scrape's shortfall of 1 was taken off


def snapshot(workers, queues=("q",), time_=1000.0) -> Snapshot:
    return Snapshot(time=time_, queues=tuple(QueueState(q) for q in queues), workers=tuple(workers))


def result(concern: Retries, workers, failed=(), legacy=None, queues=("q",), time_=1000.0):
    timing = TimingResult(Outcome(tuple(Ended(q, "failed", b"j") for q in failed), (), ()) if failed
                          else NOTHING_ENDED, {}, None, ())  # type: ignore[arg-type]
    old = None if legacy is None else FailedQueueResult(legacy, {})
    given = Given(results={JobTiming: timing, FailedQueue: old}, snapshot=snapshot(workers, queues, time_))
    return concern.reads(Given()).result(given)


def test_the_concern_over_scrapes():
    concern = Retries(RetriesOptions(gone_queue_seconds=60), Keys("rq:"))
    assert result(concern, [worker("a", 10)]).rows == [(("q",), 0)]  # baseline
    assert result(concern, [worker("a", 14)], failed=["q"]).rows == [(("q",), 3)]
    # a queue of a worker of one queue that is not among the queues read: nothing
    assert result(concern, [worker("a", 14), worker("b", 2, "elsewhere")]).rows == [(("q",), 3)]
    assert next(iter(concern.families(concern.unread()))).name == NAME.removesuffix("_total")
    # gone for the gone-queue time: dropped, and a queue with nothing counted likewise
    assert result(concern, [worker("a", 14)], queues=("q", "idle"), time_=1001.0).rows == [(("idle",), 0), (("q",), 3)]
    assert result(concern, [], queues=(), time_=1030.0).rows == [(("idle",), 0), (("q",), 3)]
    assert result(concern, [], queues=(), time_=1062.0).rows == []


def test_rq_0x_has_no_retries():
    concern = Retries(RetriesOptions(gone_queue_seconds=0), Keys("rq:"))
    result(concern, [worker("a", 0)], legacy=True)
    assert result(concern, [worker("a", 4)], legacy=True).rows == [(("q",), 0)]
    # RQ >= 1.0 with no failed list at all, or a queue named failed that is a queue: counted
    assert result(concern, [worker("a", 6)], legacy=False).rows == [(("q",), 2)]
    assert result(concern, [worker("a", 7)]).rows == [(("q",), 3)]


def test_only_workers_of_rq_1_5_and_later_can_retry():
    from rq_exporter_ng.concerns.retries import has_retry

    assert [has_retry(v) for v in ("0.13.0", "1.4.3", "1.5.0", "1.16.2", "2.12.0", "3.0.0")] == [
        False, False, True, True, True, True]
    assert has_retry("dev")  # a version that is not a number: counted
    # no version: RQ < 1.2 (0.13's worker hash has none), and its first failure lands in the
    # worker's count before RQ 0.x's failed list exists
    assert not has_retry(None) and not has_retry("")


def test_a_worker_without_a_version_counts_no_retries():
    """RQ 0.13's first failure: the worker's count grew, the failed list is not there yet."""
    concern = Retries(RetriesOptions(gone_queue_seconds=60), Keys("rq:"))
    result(concern, [worker("a", 0, version=None)])
    assert result(concern, [worker("a", 1, version=None)]).rows == [(("q",), 0)]
