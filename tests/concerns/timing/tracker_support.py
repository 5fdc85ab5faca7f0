"""What the timing tracker's tests share (test_timing_tracker_*.py): a job timing made from settings,
one scrape's reads and result, and ``Registries``, which answers the tracker's own commands the way
Redis answers ZRANGEBYSCORE / ZCOUNT / HMGET; and the oracle the property tests run against, over
random TTL mixes, skews, delays and scrape times."""

from __future__ import annotations

import math
import pickle
import zlib

from hypothesis import strategies as st

from devkit import rq_time
from rq_exporter_ng.concern import Given, taken
from rq_exporter_ng.concerns.failed_queue import FailedQueue, FailedQueueOptions
from rq_exporter_ng.concerns.timing import histograms as timing_histograms
from rq_exporter_ng.concerns.timing.job_timing import JobTiming, TimingOptions
from rq_exporter_ng.concerns.timing.tracker import TOLERANCE
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


# --- the oracle: random TTL mixes, skews, delays and scrape times ---------------------------------
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
