"""The timing tracker's counts over scripted scrapes, without Redis: each new job counted once (history
not), across clock skew, mixed and undeclared TTLs, re-runs, missing hashes, the cap, jobs kept
forever and queues that go; what the histograms and labels then hold.

``Registries`` (tracker_support.py) answers the tracker's own commands the way Redis answers
ZRANGEBYSCORE / ZCOUNT / HMGET; test_timing_rq_workers.py runs the same code against a real
redis-server and real RQ workers.
"""

from __future__ import annotations

import json
import zlib

import pytest
from tracker_support import T0, Registries, _Batch, reads, result, timing_families, timing_with, totals

from rq_exporter_ng.concerns.timing.records import Selection
from rq_exporter_ng.concerns.timing.tracker import MAX_TTLS
from rq_exporter_ng.snapshot import QueueState, Snapshot


def test_first_scrape_does_not_count_history_then_counts_each_new_job_once():
    regs, timing = Registries(), timing_with()
    for i in range(50):
        regs.end(f"old{i}", T0 - 100 + i)
    regs.answer(timing, T0 + 0.5)
    assert totals(timing)["rq_jobs_finished"] == 0
    for i in range(30):
        regs.end(f"new{i}", T0 + 1 + i / 10)
    for step in range(2, 8):  # overlapping windows return the same entries again
        regs.answer(timing, T0 + step * 5)
    assert totals(timing) == {"rq_jobs_finished": 30, "rq_jobs_failed": 0, "rq_exporter_jobs_not_timed": 0,
                              "timed": 30}


def test_many_jobs_ending_in_the_same_second_across_a_scrape():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    for i in range(400):
        regs.end(f"a{i:04}", T0 + 10 + i / 1000)
    regs.answer(timing, T0 + 10.5)
    for i in range(600):  # same second, stored after the scrape: same score as the first 400
        regs.end(f"b{i:04}", T0 + 10.6 + i / 2000)
    regs.answer(timing, T0 + 11)
    regs.answer(timing, T0 + 26)
    assert totals(timing)["rq_jobs_finished"] == 1000
    assert totals(timing)["timed"] == 1000


def test_clock_skew_within_the_slack_counts_once():
    regs, timing = Registries(), timing_with(timing_clock_slack=10)
    regs.answer(timing, T0)
    regs.answer(timing, T0 + 15)
    regs.end("behind", T0 + 16 - 8)  # a worker 8 s behind the exporter
    regs.end("ahead", T0 + 16 + 9)  # and one 9 s ahead
    for step in range(2, 6):
        regs.answer(timing, T0 + 15 * step)
    assert totals(timing)["rq_jobs_finished"] == 2


def test_mixed_ttls_are_discovered_and_every_job_counted_once():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    ttls = [60, 500, 501, 3600, 86_400]
    n = 0
    for second in range(1, 40):
        for ttl in ttls:
            # 501: stored a second after it ended, so its score - ended_at is 501 or 502
            regs.end(f"j{n}", T0 + second + 0.9, ttl=ttl, stored_after=0.3 if ttl == 501 else 0)
            n += 1
        regs.end(f"f{n}", T0 + second + 0.5, ttl=120, status="failed")
        regs.end(f"g{n}", T0 + second + 0.5, status="failed", ttl=31_536_000)
        regs.answer(timing, T0 + second + 1)
    for extra in range(5):
        regs.answer(timing, T0 + 41 + 15 * extra)
    got = totals(timing)
    assert got["rq_jobs_finished"] == 39 * len(ttls)
    assert got["rq_jobs_failed"] == 39 * 2
    assert got["timed"] == got["rq_jobs_finished"] + got["rq_jobs_failed"]
    finished_ttls = set(timing.tracker.queues["default"].registries["finished"].ttls)
    assert {60, 500, 3600, 86_400} <= finished_ttls and len(finished_ttls) <= 6


@pytest.mark.parametrize("ttls", [[500], [60, 500, 3600]], ids=["one TTL: judged a registry at once", "several: a job at a time"])
def test_the_outcome_hands_over_its_failed_jobs_as_a_filter_of_the_ended_would_find_them(ttls):
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    for second in range(1, 30):
        for n, ttl in enumerate(ttls):
            regs.end(f"j{second}-{n}", T0 + second + 0.9, ttl=ttl)
            regs.end(f"f{second}-{n}", T0 + second + 0.5, ttl=ttl, status="failed")
        if second % 7 == 0:
            regs.answer(timing, T0 + second + 1)
    regs.answer(timing, T0 + 60)
    failed = [job for outcome in regs.outcomes for job in outcome.failed]
    assert sorted(job[2] for job in failed) == sorted(regs.z["failed"])  # each failed job once
    for outcome in regs.outcomes:
        assert outcome.failed == tuple(job for job in outcome.ended if job[1] == "failed")
        assert len(outcome.failed) < len(outcome.ended) or not outcome.ended


def test_a_job_that_runs_again_counts_again():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    regs.end("again", T0 + 1)
    regs.answer(timing, T0 + 2)
    regs.end("again", T0 + 30)  # re-run: ZADD moves its score
    regs.answer(timing, T0 + 31)
    regs.answer(timing, T0 + 46)
    assert totals(timing)["rq_jobs_finished"] == 2


def test_entry_without_a_hash_is_skipped_and_reported_once():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    regs.end("gone", T0 + 1)
    del regs.jobs[b"gone"]
    problems = regs.answer(timing, T0 + 2) + regs.answer(timing, T0 + 3)
    assert [p.reason for p in problems] == ["missing_job"]
    assert totals(timing)["rq_jobs_finished"] == 0


def test_failed_job_without_end_time_is_counted_not_timed():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    regs.end("abandoned", T0 + 1, status="failed", ttl=31_536_000, fields={b"ended_at": b""})
    regs.answer(timing, T0 + 2)
    assert totals(timing) == {"rq_jobs_finished": 0, "rq_jobs_failed": 1, "rq_exporter_jobs_not_timed": 1,
                              "timed": 0}


def test_past_the_cap_jobs_are_counted_but_not_timed():
    regs, timing = Registries(), timing_with(timing_max_jobs_per_scrape=30)
    regs.answer(timing, T0)
    for i in range(100):
        regs.end(f"burst{i}", T0 + 1 + i / 200)
    regs.answer(timing, T0 + 2)
    regs.answer(timing, T0 + 17)
    assert totals(timing) == {"rq_jobs_finished": 100, "rq_jobs_failed": 0, "rq_exporter_jobs_not_timed": 70,
                              "timed": 30}


def test_an_old_entry_of_a_long_ttl_passing_through_a_short_window_is_not_counted():
    regs, timing = Registries(), timing_with(timing_ttls=(60,))
    # Ended an hour before the exporter started, TTL 3660: its score sits where TTL-60 jobs
    # ending now land.
    regs.end("old-long", T0 - 3600 + 5, ttl=3660)
    regs.answer(timing, T0)
    for step in range(1, 6):
        regs.answer(timing, T0 + 5 * step)
    assert totals(timing)["rq_jobs_finished"] == 0


def test_jobs_kept_forever_are_counted_from_their_number():
    regs, timing = Registries(), timing_with()
    regs.end("kept-before", T0 - 5, ttl=-1)
    regs.answer(timing, T0)
    regs.end("kept1", T0 + 1, ttl=-1)
    regs.end("kept2", T0 + 1, ttl=-1, status="failed")
    regs.answer(timing, T0 + 2)
    regs.answer(timing, T0 + 3)
    assert totals(timing) == {"rq_jobs_finished": 1, "rq_jobs_failed": 1, "rq_exporter_jobs_not_timed": 2,
                              "timed": 0}


def test_a_settled_registry_costs_one_read_and_still_finds_new_ttls_and_jobs_kept_forever():
    regs, timing = Registries(), timing_with()
    sent: list[tuple] = []
    reply = regs.reply

    def counting(command: tuple):
        # The sweep (a chunk of one registry, in turn) is left out: it is not a per-registry read.
        if not ("LIMIT" in command and not str(command[2]).startswith("(")):
            sent.append(command)
        return reply(command)

    regs.reply = counting
    regs.answer(timing, T0)
    regs.answer(timing, T0 + 15)
    sent.clear()
    regs.answer(timing, T0 + 30)
    # finished: window + probe + the (none) kept forever in one read; failed: window + probe (its
    # jobs kept forever are the reader's count)
    assert [c[0] for c in sent if b":finished:" in c[1]] == ["ZRANGEBYSCORE"]
    assert [c[0] for c in sent if b":failed:" in c[1]] == ["ZRANGEBYSCORE"]
    regs.end("day", T0 + 31, ttl=86_400)  # a TTL nobody declared, longer than any known
    regs.end("kept", T0 + 31, ttl=-1)
    regs.end("plain", T0 + 32)
    for step in range(3, 8):
        regs.answer(timing, T0 + 15 * step)
        regs.end(f"kept{step}", T0 + 15 * step + 1, ttl=-1)  # now counted by ZCOUNT
        regs.end(f"day{step}", T0 + 15 * step + 1, ttl=86_400)
    regs.answer(timing, T0 + 150)
    assert 86_400 in timing.tracker.queues["default"].registries["finished"].ttls
    assert totals(timing) == {"rq_jobs_finished": 3 + 5 + 5, "rq_jobs_failed": 0,
                              "rq_exporter_jobs_not_timed": 1 + 5, "timed": 2 + 5}


def test_memory_stays_bounded_over_many_scrapes():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    n = 0
    for scrape in range(1, 200):
        for _ in range(20):
            regs.end(f"m{n}", T0 + scrape * 15 - 7)
            n += 1
        regs.answer(timing, T0 + scrape * 15)
        # expired entries leave the registry as RQ's cleanup removes them
        regs.z["finished"] = {m: s for m, s in regs.z["finished"].items() if s > T0 + scrape * 15}
    assert totals(timing)["rq_jobs_finished"] == n
    assert len(timing.tracker.queues["default"].registries["finished"].seen) <= 20 * 3


def test_a_queue_first_seen_later_counts_from_the_previous_scrape():
    regs, timing = Registries("late"), timing_with()
    plan = timing.tracker.plan([], T0)  # a first scrape that saw no queue
    timing.tracker.apply(plan, [], Selection((), {}, {}), [])
    regs.end("early", T0 + 3)
    regs.end("kept", T0 + 3, ttl=-1)
    regs.answer(timing, T0 + 15)
    assert totals(timing, "late")["rq_jobs_finished"] == 2


def test_histograms_put_each_duration_in_its_bucket():
    regs, timing = Registries(), timing_with(timing_buckets=(0.5, 1, 5))
    regs.answer(timing, T0)
    for i, run in enumerate((0.1, 0.5, 0.7, 3, 60)):
        regs.end(f"r{i}", T0 + 1, run=run, wait=run * 2)
    regs.answer(timing, T0 + 2)
    duration = {f.name: f for f in timing_families(timing, ["default"])}["rq_job_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in duration.samples
               if s.name.endswith("_bucket") and s.labels["status"] == "finished"}
    assert buckets == {"0.5": 2, "1.0": 3, "5.0": 4, "+Inf": 5}
    total = [s.value for s in duration.samples if s.name.endswith("_sum") and s.labels["status"] == "finished"]
    assert total == [pytest.approx(64.3, abs=0.01)]


def test_func_label_folds_past_its_limit():
    regs, timing = Registries(), timing_with(timing_func_label=True, timing_func_limit=1)
    regs.answer(timing, T0)
    regs.end("a", T0 + 1)
    regs.end("b", T0 + 1, fields={b"data": zlib.compress(json.dumps(["app.other", None, [], {}]).encode())})
    regs.end("c", T0 + 1, fields={b"data": b"not zlib"})
    regs.answer(timing, T0 + 2)
    funcs = {s.labels["func"] for f in timing_families(timing, ["default"]) if f.name == "rq_job_duration_seconds"
             for s in f.samples}
    assert funcs == {"app.tasks.work", "other"}


def test_every_known_queue_has_zero_counters_and_histograms_appear_with_their_first_job():
    timing = timing_with()
    names = {(s.name, tuple(sorted(s.labels.items()))) for f in timing_families(timing, ["a", "b"]) for s in f.samples
             if s.name.endswith(("_total", "_count"))}
    assert ("rq_jobs_finished_total", (("queue", "a"),)) in names
    assert ("rq_jobs_failed_total", (("queue", "b"),)) in names
    assert ("rq_exporter_jobs_not_timed_total", (("queue", "b"),)) in names
    assert not any(name.startswith(("rq_job_duration_seconds", "rq_job_wait_seconds")) for name, _ in names)


def test_ttls_per_registry_are_bounded():
    regs, timing = Registries(), timing_with(timing_discovery_per_scrape=1000)
    regs.answer(timing, T0)
    for i in range(MAX_TTLS + 10):
        regs.end(f"t{i}", T0 + 1, ttl=1000 + 10 * i)
    problems = []
    for step in range(2, 12):
        problems += regs.answer(timing, T0 + step)
    assert len(timing.tracker.queues["default"].registries["finished"].ttls) == MAX_TTLS
    assert [p.reason for p in problems] == ["too_many_ttls"]

def test_failed_jobs_kept_forever_count_from_the_readers_count_and_an_unread_one_changes_nothing():
    regs, timing = Registries(), timing_with()
    regs.answer(timing, T0)
    regs.end("kept1", T0 + 1, ttl=-1, status="failed")
    regs.answer(timing, T0 + 15)
    assert totals(timing)["rq_jobs_failed"] == 1
    # The reader could not read the count (an error reply): no growth is guessed...
    scan = reads(timing)
    second, third = _Batch(), _Batch()
    scan.second(second, [(b"default", "default")], T0 + 30)
    second.answer(regs)
    scan.third(third)
    third.answer(regs)
    result(scan, Snapshot(T0 + 30, queues=(QueueState("default", failed_forever=None),)))
    assert totals(timing)["rq_jobs_failed"] == 1
    # ...and the next read counts only what is new since the last count it had.
    regs.end("kept2", T0 + 31, ttl=-1, status="failed")
    regs.answer(timing, T0 + 45)
    assert totals(timing)["rq_jobs_failed"] == 2
    assert totals(timing)["rq_exporter_jobs_not_timed"] == 2


def test_a_queue_with_no_key_for_gone_queue_seconds_loses_its_counters_and_histograms():
    regs, timing = Registries("gone"), timing_with(gone_queue_seconds=60)
    regs.answer(timing, T0 + 0.5)
    regs.end("a", T0 + 1)
    regs.end("b", T0 + 2, status="failed")
    regs.answer(timing, T0 + 10)
    assert totals(timing)["rq_jobs_finished"] == 1 and timing.times.durations and timing.times.waits

    def absent(now: float) -> None:  # a scrape that lists no queue: "gone" has no key any more
        result(reads(timing), Snapshot(now, queues=()))

    absent(T0 + 69)
    assert timing.times.queues() == {"gone"}  # 59 s since it was last read
    absent(T0 + 70)
    assert timing.times.queues() == set() and not timing.times.durations and not timing.times.waits
    assert "gone" not in timing.tracker.queues
    # Back: counted from 0, as on a first scrape (history not counted).
    regs.answer(timing, T0 + 80)
    assert totals(timing)["rq_jobs_finished"] == 0


def test_gone_queue_seconds_0_keeps_a_queue_with_no_key_for_ever():
    regs, timing = Registries("gone"), timing_with(gone_queue_seconds=0)
    regs.answer(timing, T0 + 0.5)
    regs.end("a", T0 + 1)
    regs.answer(timing, T0 + 10)
    result(reads(timing), Snapshot(T0 + 10**7, queues=()))
    assert totals(timing)["rq_jobs_finished"] == 1 and timing.times.durations

