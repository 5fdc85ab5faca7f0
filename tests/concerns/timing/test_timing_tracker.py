"""The timing tracker's pure logic, without Redis.

``Registries`` answers the tracker's own commands the way Redis answers ZRANGEBYSCORE / ZCOUNT /
HMGET; test_timing_rq_workers.py runs the same code against a real redis-server and real RQ
workers.
"""

from __future__ import annotations

import json
import math
import pickle
import zlib

import pytest

from devkit import rq_time
from rq_exporter_ng.concern import Given, taken
from rq_exporter_ng.concerns.failed_queue import FailedQueue, FailedQueueOptions
from rq_exporter_ng.concerns.timing import histograms as timing_histograms
from rq_exporter_ng.concerns.timing.job_timing import JobTiming, TimingOptions
from rq_exporter_ng.concerns.timing.records import Selection
from rq_exporter_ng.concerns.timing.tracker import MAX_TTLS, TOLERANCE
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import QueueState, Snapshot

T0 = 1_800_000_000


def timing_with(**settings) -> JobTiming:
    """Job timing with these settings (by their names), the rest as by default."""
    return JobTiming(taken(TimingOptions, Settings(**settings)), Keys("rq"))


def reads(timing: JobTiming):
    """One scrape's reads of job timing, with no RQ 0.x failed queue."""
    no_failed_queue = FailedQueue(FailedQueueOptions(lambda name: True), timing.keys).reads(Given())
    return timing.reads(Given(reads={FailedQueue: no_failed_queue}))


def result(scan, snapshot: Snapshot):
    return scan.result(Given(results={FailedQueue: None}, snapshot=snapshot))


def stamp(when: float) -> bytes:
    return rq_time(when).encode()


class Registries:
    """In-memory finished/failed registries and job hashes of one queue, written as RQ writes them."""

    def __init__(self, queue: str = "default") -> None:
        self.queue = queue
        self.z: dict[str, dict[bytes, float]] = {"finished": {}, "failed": {}}
        self.outcomes: list = []  # each scrape's Outcome
        self.jobs: dict[bytes, dict[bytes, bytes]] = {}

    def end(self, job_id: str, ended: float, ttl: int = 500, status: str = "finished", run: float = 1.0,
            wait: float = 2.0, stored_after: float = 0.0, fields: dict | None = None) -> None:
        """A job that ended at ``ended`` (worker clock), stored ``stored_after`` seconds later."""
        member = job_id.encode()
        started = ended - run
        self.jobs[member] = {
            b"ended_at": stamp(ended), b"started_at": stamp(started), b"enqueued_at": stamp(started - wait),
            b"data": zlib.compress(pickle.dumps(("app.tasks.work", None, (1,), {}), protocol=5)),
            **(fields or {}),
        }
        stored = int(ended + stored_after)
        if ttl == -1:
            score = math.inf if status == "finished" else -1.0
        else:
            score = float(stored + ttl)
        self.z[status][member] = score

    def answer(self, timing: JobTiming, now: float) -> list:
        """One scrape: the tracker's own commands (timing/reads.py), answered from these registries."""
        scan = reads(timing)
        second, third = _Batch(), _Batch()
        scan.second(second, [(self.queue.encode(), self.queue)], now)
        second.answer(self)
        scan.third(third)
        third.answer(self)
        # The reader's part of the same read: it counts the failed jobs kept forever (score -1).
        kept = sum(1 for score in self.z["failed"].values() if score < 0)
        timed = result(scan, Snapshot(now, queues=(QueueState(self.queue, failed_forever=kept),)))
        self.outcomes.append(timed.outcome)
        return list(timed.problems)

    def reply(self, command: tuple):
        """What Redis answers (RESP2, before redis-py's callbacks): scores inclusive unless '(',
        ties ordered by member, LIMIT offset count, members alone without WITHSCORES."""
        name, key, *args = command
        if name == "HMGET":
            job = self.jobs.get(key.split(b":", 2)[2]) or {}
            return [job.get(f) for f in args]
        status = key.split(b":")[1].decode()
        lo, hi = _bound(args[0]), _bound(args[1])
        ordered = sorted((s, m) for m, s in self.z[status].items() if lo(s, True) and hi(s, False))
        if name == "ZCOUNT":
            return len(ordered)
        assert name == "ZRANGEBYSCORE"
        if len(args) == 2:  # members alone (a window read by counts, ranked.py)
            return [m for s, m in ordered]
        assert args[2] == "WITHSCORES"
        if len(args) > 3:
            assert args[3] == "LIMIT"
            ordered = ordered[args[4]:args[4] + args[5]]
        return [x for s, m in ordered for x in (m, repr(s).encode())]


def _bound(text):
    """A ZRANGEBYSCORE bound -> test(score, is_lower_bound)."""
    text = str(text)
    exclusive = text.startswith("(")
    value = float(text.lstrip("(").replace("+inf", "inf"))
    if exclusive:
        return lambda s, lower: s > value if lower else s < value
    return lambda s, lower: s >= value if lower else s <= value


class _Batch:
    """Collects a scan's command groups as rq_exporter_ng.batch.Batch does, then answers them."""

    def __init__(self, sent_from: int | None = 0) -> None:
        self.groups: list = []
        # ``sent`` from the handler call of this number on (as Batch, when all commands are sent);
        # None: never.
        self.sent_from = sent_from
        self.sent = False
        self.last: list = []  # add_last's builds: their groups come after every other

    def add_group(self, handler, commands, quiet=False) -> None:
        self.groups.append([(handler, commands)])

    def add_groups(self, groups, quiet=False) -> None:
        self.groups.append(groups)  # built only when answered, as Batch builds them when sending

    def add_last(self, build) -> None:
        self.last.append(build)

    def answer(self, regs: Registries) -> None:
        while self.last:  # built once the rest is: their groups are answered last, as Batch sends them
            self.last.pop(0)()
        calls = 0
        for groups in self.groups:
            for handler, commands in groups:
                self.sent = self.sent_from is not None and calls >= self.sent_from
                handler([regs.reply(command) for command in commands])
                calls += 1


def timing_families(timing: JobTiming, queues):
    """Every known queue's counters and histograms, as a scrape of ``queues`` would give them."""
    return timing_histograms.families(timing.times.totals({*timing.tracker.queues, *queues}))


def totals(timing: JobTiming, queue: str = "default") -> dict[str, float]:
    families = {f.name: f for f in timing_families(timing, [queue])}
    value = {}
    for name in ("rq_jobs_finished", "rq_jobs_failed", "rq_exporter_jobs_not_timed"):
        value[name] = sum(s.value for s in families[name].samples if s.name.endswith("_total"))
    value["timed"] = sum(s.value for s in families["rq_job_duration_seconds"].samples
                         if s.name.endswith("_count"))
    return value


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


# --- property: against an oracle, over random TTL mixes, skews, delays and scrape times ----------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_jobs = st.lists(
    st.tuples(
        st.floats(0, 240),  # ended, seconds after the exporter's first scrape (negative: before)
        st.sampled_from([40, 60, 500, 505, 3600, 86_400]),  # TTL
        st.floats(0, 1.5),  # stored this long after ended_at
        st.integers(-8, 8),  # worker clock skew, within the 10 s slack
        st.booleans(),  # failed
    ),
    max_size=120,
)
_gaps = st.lists(st.floats(0.3, 30), min_size=3, max_size=25)


def _simulate(jobs, gaps, timing: JobTiming, start: float = T0 + 0.37) -> tuple[int, int, int, int]:
    """Runs the scrapes; returns (finished counted, failed counted, exact count without / with the
    jobs that ended within TOLERANCE seconds of the first scrape: those may count either way)."""
    regs = Registries()
    pending = sorted(
        (start + ended - 30 + stored, i, ended - 30, ttl, stored, skew, failed)
        for i, (ended, ttl, stored, skew, failed) in enumerate(jobs)
    )
    expected, boundary = set(), set()
    now = start
    for gap in [0.0, *gaps]:
        now += gap
        while pending and pending[0][0] <= now:
            _, i, ended, ttl, stored, skew, failed = pending.pop(0)
            regs.end(f"j{i}", start + ended + skew, ttl=ttl, stored_after=stored,
                     status="failed" if failed else "finished")
        for z in regs.z.values():  # RQ's cleanup: expired entries go
            for member in [m for m, s in z.items() if 0 <= s <= now]:
                del z[member]
        for status, z in regs.z.items():
            for member in z:
                # Counted when it ended (by its worker's clock, in whole seconds, as stored) at or
                # after the first scrape's second, and it is there for a scrape to see.
                stored_worker = int(z[member]) - _ttl_of(jobs, member)
                if stored_worker >= int(start) + TOLERANCE:
                    expected.add((status, member))
                elif stored_worker >= int(start) - TOLERANCE:
                    boundary.add((status, member))
        regs.answer(timing, now)
    got = totals(timing)
    return got["rq_jobs_finished"], got["rq_jobs_failed"], len(expected), len(expected | boundary)


def _ttl_of(jobs, member: bytes) -> int:
    return jobs[int(member[1:])][1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps)
def test_declared_ttls_count_every_job_exactly_once(jobs, gaps):
    timing = timing_with(timing_ttls=(40, 60, 500, 505, 3600, 86_400))
    finished, failed, exact, with_boundary = _simulate(jobs, gaps, timing)
    assert exact <= finished + failed <= with_boundary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps)
def test_undeclared_ttls_never_count_a_job_twice(jobs, gaps):
    finished, failed, _, with_boundary = _simulate(jobs, gaps, timing_with())
    assert finished + failed <= with_boundary


def test_a_ttl_learned_late_catches_up_within_the_cap_without_counting_by_score():
    # TTL 60 is not declared and its jobs carry no result_ttl field: the sweep finds it, and its
    # window then reads the backlog since the floor, at most 12 hashes a scrape.
    # 600 older jobs (TTL 500, ended ~8 min before the exporter started) fill the bottom of the
    # registry, so the sweep needs a while and a backlog of TTL-60 jobs builds up.
    history = [(-440 + i * 0.05, 500, 0.1, 0, False) for i in range(600)]
    jobs = history + [(30 + i * 0.25, 60 if i % 2 else 500, 0.1, 0, False) for i in range(400)]
    timing = timing_with(timing_max_jobs_per_scrape=12, timing_discovery_per_scrape=20)
    deferred = []
    select = timing.tracker.select

    def watch(plan, replies, **options):
        selection = select(plan, replies, **options)
        deferred.extend(selection.deferred.values())
        return selection

    timing.tracker.select = watch
    finished, failed, _, with_boundary = _simulate(jobs, [1.0] * 160, timing)
    assert deferred  # the backlog did exceed the cap
    assert finished + failed <= with_boundary
    assert finished > 200  # TTL-60 jobs counted: all those still in the registry once it was learned
    assert totals(timing)["timed"] == finished  # nothing was counted without its hash
    assert not any(c.catching_up for c in timing.tracker.queues["default"].registries["finished"].ttls.values())


_one_ttl_jobs = st.lists(
    st.tuples(st.floats(0, 240), st.just(500), st.floats(0, 1.5), st.integers(-8, 8), st.booleans()),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_one_ttl_jobs, _gaps, st.integers(0, 20))
def test_past_the_cap_one_ttl_still_counts_every_job_exactly_once(jobs, gaps, cap):
    timing = timing_with(timing_max_jobs_per_scrape=cap, timing_ttls=(500,))
    finished, failed, exact, with_boundary = _simulate(jobs, gaps, timing)
    assert exact <= finished + failed <= with_boundary
    got = totals(timing)
    assert got["timed"] + got["rq_exporter_jobs_not_timed"] == finished + failed


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


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-20, 40)), max_size=30), st.integers(0, 40),
       st.lists(st.integers(0, 40), max_size=10))
def test_select_of_a_lone_window_says_what_the_general_loops_say(entries, cap, remembered):
    """select's fast path (one window, no probe or sweep entries, all within the cap) against the
    general loops, forced by a probe entry inside the window's range (which they skip)."""
    from rq_exporter_ng.concerns.timing.records import RegistryReply
    timing = timing_with(timing_max_jobs_per_scrape=cap)
    tracker = timing.tracker
    tracker.queues.update(tracker.plan([(b"q", "q")], T0).new_queues)
    tracker.last_now = T0
    plan = tracker.plan([(b"q", "q")], T0 + 15)
    rp = plan.registries[0]
    assert len(rp.windows) == 1
    seen = tracker.queues["q"].registries[rp.status].seen
    for k in remembered:
        seen[(b"job-%d" % k, float(T0 + 500 + k % 7))] = T0 + 100
    window = sorted({b"job-%d" % m: (b"job-%d" % m, float(T0 + 500 + s)) for m, s in entries}.values(),
                    key=lambda e: (e[1], e[0]))  # a sorted set's read: each member once, by score
    reply = RegistryReply({rp.windows[0].ttl: window} if window else {})
    forced = reply._replace(probe=[(b"inside", float(T0 + 500))])
    fast, general = tracker.select(plan, [reply]), tracker.select(plan, [forced])
    assert fast.candidates == general.candidates
    assert fast.deferred == general.deferred and fast.sweep_afforded == general.sweep_afforded
    # reads.py leaves the remembered entries out of the replies already, and says so.
    unseen = seen.unseen(window)
    told = RegistryReply({rp.windows[0].ttl: unseen} if unseen else {})
    assert tracker.select(plan, [told], unseen=True).candidates == fast.candidates
    assert tracker.select(plan, [told._replace(probe=forced.probe)], unseen=True).candidates == fast.candidates


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 2500])
def test_candidates_released_to_apply_come_in_their_order_and_are_released_once_passed(size):
    import gc
    import weakref

    from rq_exporter_ng.concerns.timing.reads import _released
    from rq_exporter_ng.concerns.timing.records import Candidate

    class Member:  # weakly referable, unlike bytes: shows when a judged candidate is gone
        def __init__(self, k: int) -> None:
            self.k = k

    candidates = [Candidate(k // 300, Member(k), float(k), 60, k % 7 != 0)  # type: ignore[arg-type]
                  for k in range(size)]
    want = [(c.registry, c.member.k, c.score, c.window, c.read_hash) for c in candidates]  # type: ignore[attr-defined]
    first = weakref.ref(candidates[0].member) if candidates else None
    released = _released(candidates)
    del candidates
    got = []
    for k, c in enumerate(released):
        got.append((c.registry, c.member.k, c.score, c.window, c.read_hash))  # type: ignore[attr-defined]
        if k == 1000 and first is not None:
            del c
            gc.collect()
            assert first() is None  # the first chunk, passed, is released
    assert got == want


def _judged(jobs, gaps, declared: bool, without: str | None = None):
    """The families (samples, exemplars) and the entries remembered after ``_simulate``; ``without``:
    a fast path of tracker.py that says "ask the general way" every time (None: as shipped)."""
    from unittest import mock

    from rq_exporter_ng.concerns.timing import tracker as timing_tracker

    timing = timing_with(timing_ttls=(40, 60, 500, 505, 3600, 86_400) if declared else ())
    if without is None:
        _simulate(jobs, gaps, timing)
    else:
        owner, _, name = without.rpartition(".")
        with mock.patch.object(getattr(timing_tracker, owner) if owner else timing_tracker, name, lambda *args: None):
            _simulate(jobs, gaps, timing)
    families = [(f.name, list(f.samples)) for f in timing_families(timing, ["default"])]
    seen = {status: sorted(reg.seen.items()) for status, reg in timing.tracker.queues["default"].registries.items()}
    return families, seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_the_check_made_once_a_score_judges_as_the_check_a_job(jobs, gaps, declared):
    """_judge with plain_range's span (decided once a score) against _judge without it
    (plain_count a job): the same families, samples and exemplars, and the same entries remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="plain_range")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_a_registry_judged_at_once_judges_as_the_loop_a_job(jobs, gaps, declared):
    """plain.py's verdicts (a registry's common case at once, ahead in round 3 or in apply) against
    _judge with its loop alone: the same families, samples and exemplars, and the same entries
    remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="registry_verdict")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_registries_judged_ahead_in_round_3_judge_as_apply_alone(jobs, gaps, declared):
    """Registries judged as their answers arrive (reads.py's _judge_ahead, their jobs observed in a
    draft) against every registry judged by apply after the read: the same families, samples and
    exemplars, and the same entries remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="Tracker.judge_ahead")


def _news_to_judge_ahead(third: _Batch):
    """A registry past its first scrapes, with 300 finished and 7 failed jobs of RQ's default TTLs
    new at T0 + 12 (plain.py's case), and that scrape's reads up to round 3's answers from
    ``third``: (timing, registries, the scrape's TimingReads). One job, ``b``, was counted before."""
    timing = timing_with()
    regs = Registries()
    for k in range(40):
        regs.end(f"a{k}", T0 + k / 10, ttl=500)
    regs.answer(timing, T0 + 5)  # history: not counted
    regs.end("b", T0 + 6, ttl=500)
    regs.answer(timing, T0 + 8)
    for k in range(300):
        regs.end(f"c{k}", T0 + 9 + k / 100, ttl=500)
    for k in range(7):
        regs.end(f"d{k}", T0 + 9 + k / 2, ttl=31_536_000, status="failed")
    scan = reads(timing)
    second = _Batch()
    scan.second(second, [(b"default", "default")], T0 + 12)
    second.answer(regs)
    scan.third(third)
    return timing, regs, scan


def test_registries_are_judged_ahead_and_a_scrape_failing_after_it_changes_nothing():
    """The common case is judged ahead (so the test above compares something), and the verdicts
    made ahead are kept only by the result: a scrape whose read fails after round 3's answers
    leaves the tracker's memory and the families as they were."""
    third = _Batch()
    timing, regs, scan = _news_to_judge_ahead(third)

    def state():
        registries = timing.tracker.queues["default"].registries.items()
        # ... down to the registries' form: one TTL kept as a pair, no Seen made (RegistryTrack)
        kept = {s: (None if r.remembered is None else sorted(r.remembered.items()), r.one_ttl, r._ttls)
                for s, r in registries}
        return [(f.name, list(f.samples)) for f in timing_families(timing, ["default"])], kept

    before = state()
    third.answer(regs)  # ... and the read fails here: result is never called
    assert [len(v.ended) for _, v in scan.ahead] == [300, 7] and scan.observed == 307
    assert state() == before
    regs.answer(timing, T0 + 12)
    assert totals(timing)["rq_jobs_finished"] == 301 and totals(timing)["rq_jobs_failed"] == 7


@pytest.mark.parametrize(("sent_from", "ahead"), [(0, [300, 7]), (1, [300, 7]), (None, [])])
def test_registries_are_judged_ahead_only_once_the_batch_is_all_sent(sent_from, ahead):
    """While commands are still being sent, the verdicts wait (their work would hold the sending
    back): answers that came before are judged at the first group after it, and a batch whose
    answers all came before leaves its registries to apply. The counts are the same every way."""
    third = _Batch(sent_from)
    timing, regs, scan = _news_to_judge_ahead(third)
    third.answer(regs)
    assert [len(v.ended) for _, v in scan.ahead] == ahead
    # The candidates of the registries judged are let go already; the rest wait for apply.
    assert scan._read is not None and scan._read.count(None) == scan.observed == sum(ahead)
    assert None not in scan._read[scan.observed:]
    kept = sum(1 for score in regs.z["failed"].values() if score < 0)
    result(scan, Snapshot(T0 + 12, queues=(QueueState("default", failed_forever=kept),)))
    assert totals(timing)["rq_jobs_finished"] == 301 and totals(timing)["rq_jobs_failed"] == 7
    assert totals(timing)["timed"] == 308


def test_plain_verdict_takes_the_common_case_and_leaves_the_rest_to_the_loop():
    """What it counts at once, and each thing that sends a registry to the loop, seen untouched;
    what it decided is kept in seen by remember."""
    from rq_exporter_ng.concerns.timing.plain import plain_verdict, remember
    from rq_exporter_ng.concerns.timing.records import Ended, Seen

    score, window, low = 1_800_000_500.0, 500, 1_799_999_990
    ended = 1_800_000_000.25
    cands = [(0, b"a", score, window, True), (0, b"b", score, window, True), (0, b"c", score + 1, window, True)]
    answers = [(ended, ended - 1, ended - 2), (ended + 0.5, ended - 1, ended - 2), (ended + 1, ended, ended)]
    seen = Seen()
    got = plain_verdict("q", "finished", cands, answers, seen, window, low)
    assert got is not None
    assert got.ended == [Ended("q", "finished", b"a", ended, answers[0]),
                         Ended("q", "finished", b"b", ended + 0.5, answers[1]),
                         Ended("q", "finished", b"c", ended + 1, answers[2])]
    assert not seen  # only read
    remember(seen, got)
    assert sorted(seen.items()) == [((b"a", score), score - window), ((b"b", score), score - window),
                                    ((b"c", score + 1), score + 1 - window)]
    nan = float("nan")
    refused = {
        "an answer not compacted": (cands, [answers[0], answers[1], [ended + 1, ended, ended, b"60", None]]),
        "an end time not read": (cands, [answers[0], answers[1], (b"2027-01-15T08:00:01.000000Z", ended, ended)]),
        "an end time NaN": (cands, [answers[0], answers[1], (nan, ended, ended)]),
        "an end time outside its score's span": (cands, [answers[0], answers[1], (ended + 9, ended, ended)]),
        "a hash not read": (cands[:2] + [(0, b"c", score + 1, window, False)], answers),
        "another window": (cands[:2] + [(0, b"c", score + 1, 86_400, True)], answers),
        "an entry twice": (cands[:2] + [(0, b"a", score, window, True)], answers),
        "a score in two runs": (cands + [(0, b"d", score, window, True)], answers + [answers[0]]),
    }
    for why, (some, their_answers) in refused.items():
        seen = Seen()
        assert plain_verdict("q", "finished", some, their_answers, seen, window, low) is None, why
        assert not seen, why
    seen = Seen([((b"b", score), 0.0)])
    assert plain_verdict("q", "finished", cands, answers, seen, window, low) is None  # remembered already
    assert sorted(seen.items()) == [((b"b", score), 0.0)]
