"""Job timing as a concern: its options and what it keeps for the life of the process (an overview
of the package is in __init__.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric

from rq_exporter_ng.concern import Concern, Given, taken
from rq_exporter_ng.concerns.failed_queue import FailedQueue
from rq_exporter_ng.concerns.timing.histograms import JobTimes, families
from rq_exporter_ng.concerns.timing.reads import NOTHING_ENDED, TimingReads, TimingResult
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS
from rq_exporter_ng.concerns.timing.tracker import Tracker
from rq_exporter_ng.gone import GoneQueues
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings


@dataclass(frozen=True)
class TimingOptions:
    timing_buckets: tuple[float, ...]
    timing_max_jobs_per_scrape: int
    timing_discovery_per_scrape: int
    timing_clock_slack: int
    timing_ttls: tuple[int, ...]
    timing_func_label: bool
    timing_func_limit: int
    gone_queue_seconds: int


class JobTiming(Concern[TimingOptions, TimingReads, TimingResult]):
    """Kept for the life of the process (per /probe target): the tracker's cursors, the counters
    and histograms. Takes RQ 0.x's failed queue: no queue of its own, and its new jobs count."""

    needs = (FailedQueue,)

    @classmethod
    def options(cls, settings: Settings) -> TimingOptions | None:
        return taken(TimingOptions, settings) if settings.job_timing else None

    def __init__(self, options: TimingOptions, keys: Keys) -> None:
        self.keys = keys
        self.tracker = Tracker(options, keys)
        self.times = JobTimes(options, keys)
        self.gone = GoneQueues(options.gone_queue_seconds)
        # ``data`` holds the call's arguments too: read it only when the func label needs it.
        self.fields = JOB_FIELDS if options.timing_func_label else JOB_FIELDS[:-1]

    def reads(self, given: Given) -> TimingReads:
        return TimingReads(self, skip=given.reads(FailedQueue).not_queues)

    def unread(self) -> TimingResult:
        # Counters keep their values while Redis is down: they are the exporter's own state.
        return TimingResult(NOTHING_ENDED, {}, self.times.totals(self.tracker.queues), ())

    def forget(self, queue: str) -> None:
        """``queue`` turned out not to be a queue: no counters for it, no reads of its registries."""
        self.tracker.queues.pop(queue, None)
        self.times.forget(queue)

    def forget_gone(self, present: set[str], now: float) -> None:
        """Drop the counters and histograms of the queues gone from Redis for too long."""
        for queue in self.gone.expired(present, {*self.tracker.queues, *self.times.queues()}, now):
            self.forget(queue)

    def families(self, result: TimingResult) -> Iterator[Metric]:
        return families(result.totals)
