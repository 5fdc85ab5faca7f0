"""Job timing: how long jobs ran and waited, and how many finished and failed, exactly once each.

Three pieces, each in a module of its own:

- timing_tracker.py: which finished and failed registry entries are new since the last scrape
  (score windows per TTL, TTL learning, the probe and the sweep), deciding per entry with the
  rules of timing_rules.py;
- timing_redis.py: the tracker's plan as read commands riding in the reader's rounds 2 and 3,
  and their replies as results;
- timing_histograms.py: the jobs found ended as counters and histograms (with the func label);
- exceptions.py: the failed ones by exception class, read in the same round as their hashes.

``Timing`` wires them together for the collector: one per exporter (per /probe target), kept
for the life of the process.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Sequence

from prometheus_client.core import Metric

from rq_exporter.exceptions import ExceptionCounts, ExceptionScan
from rq_exporter.keys import Keys
from rq_exporter.settings import DEFAULT_BUCKETS
from rq_exporter.snapshot import Problem, Snapshot
from rq_exporter.timing_histograms import JobTimes
from rq_exporter.timing_redis import TimingScan
from rq_exporter.timing_rules import JOB_FIELDS
from rq_exporter.timing_tracker import Ended, Outcome, Tracker


class Timing:
    def __init__(
        self,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        max_jobs_per_scrape: int = 20_000,
        discovery_per_scrape: int = 100,
        slack: int = 10,
        extra_ttls: Iterable[int] = (),
        func_label: bool = False,
        func_limit: int = 100,
        key_prefix: str = "rq",
        exception_limit: int = 50,
    ) -> None:
        self.keys = Keys(key_prefix)
        self.tracker = Tracker(discovery_per_scrape=discovery_per_scrape, max_jobs_per_scrape=max_jobs_per_scrape,
                               slack=slack, extra_ttls=extra_ttls, keys=self.keys)
        self.times = JobTimes(buckets, func_label=func_label, func_limit=func_limit, keys=self.keys)
        self.exceptions = ExceptionCounts(exception_limit)
        # ``data`` holds the call's arguments too: read it only when the func label needs it.
        self.fields = JOB_FIELDS if func_label else JOB_FIELDS[:-1]

    def scan(self, skip: Container[str] = ()) -> TimingScan:
        """This scrape's reads, to ride in the reader's rounds (``read_snapshot(extras=...)``);
        ``skip``: queues that are not queues (RQ 0.x's failed queue)."""
        return TimingScan(self.tracker, self.keys, self.fields, skip)

    def exception_scan(self, scan: TimingScan) -> ExceptionScan:
        """The exception reads of ``scan``'s failed jobs; it goes right after ``scan`` in the extras."""
        return ExceptionScan(scan, self.keys, self.exceptions.cache)

    def forget(self, queue: str) -> None:
        """``queue`` turned out not to be a queue: no counters for it, no reads of its registries."""
        self.tracker.queues.pop(queue, None)
        for counts in self.times.counts.values():
            counts.pop(queue, None)
        self.exceptions.forget(queue)

    def finish(self, scan: TimingScan, snapshot: Snapshot, exceptions: ExceptionScan | None = None) -> list[Problem]:
        """After a successful read: cursors move, ended jobs are counted and timed, failed ones
        counted by exception class (``exceptions``: the scan of their tracebacks, if read)."""
        outcome, problems = scan.finish({q.name: q.failed_forever for q in snapshot.queues})
        if outcome is not None:
            problems += self.times.record(outcome)
            classes, unreadable = exceptions.classes() if exceptions is not None else ({}, [])
            problems += unreadable
            self.exceptions.record(outcome, classes)
        return problems

    def count(self, ended: Sequence[Ended]) -> list[Problem]:
        """Jobs found ended elsewhere (RQ 0.x's failed queue), counted and timed like the tracker's."""
        outcome = Outcome(tuple(ended), (), ())
        self.exceptions.record(outcome, {})  # RQ 0.x's tracebacks are not read: unknown
        return self.times.record(outcome)

    def families(self, queues: Iterable[str] = ()) -> Iterator[Metric]:
        """Counters for every queue seen since the exporter started; histograms once a job was timed."""
        yield from self.times.families(set(self.tracker.queues) | set(queues))
        yield from self.exceptions.families()
