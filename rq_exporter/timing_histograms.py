"""Job timing's metric side: the jobs the tracker found ended become counters and histograms.

Kept for the life of the process: rq_jobs_finished_total / rq_jobs_failed_total per queue,
rq_exporter_jobs_not_timed_total, and the run time (ended_at - started_at) and wait time
(started_at - enqueued_at) histograms, by queue (and status, and function with the func label).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from rq_exporter import jobfunc, parse
from rq_exporter.keys import Keys
from rq_exporter.metrics import histogram_table, table
from rq_exporter.settings import DEFAULT_BUCKETS
from rq_exporter.snapshot import Problem
from rq_exporter.timing_tracker import REGISTRIES, Ended, Outcome


class Histogram:
    __slots__ = ("_cumulative", "counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0
        self._cumulative: list[int] | None = None  # rebuilt only after an observation

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.sum += value
        self._cumulative = None

    @property
    def cumulative(self) -> list[int]:
        """The count of each bucket as exposed: observations up to its bound."""
        if self._cumulative is None:
            self._cumulative = list(accumulate(self.counts))
        return self._cumulative


class QueueCounts:
    __slots__ = ("failed", "finished", "not_timed")

    def __init__(self) -> None:
        self.finished = self.failed = self.not_timed = 0


class JobTimes:
    def __init__(self, buckets: Iterable[float] = DEFAULT_BUCKETS, func_label: bool = False,
                 func_limit: int = 100, keys: Keys | None = None) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self.les = tuple(floatToGoString(b) for b in self.bounds) + ("+Inf",)
        self.func_label = func_label
        self.func_limit = func_limit
        self.keys = keys or Keys()
        self.counts: dict[str, QueueCounts] = {}
        self.durations: dict[tuple, Histogram] = {}  # (queue, status, func or None)
        self.waits: dict[tuple, Histogram] = {}  # (queue, func or None)
        self.funcs: set[str] = set()

    def record(self, outcome: Outcome) -> list[Problem]:
        problems: list[Problem] = []
        for job in outcome.ended:
            counts = self._counts(job.queue)
            setattr(counts, job.status, getattr(counts, job.status) + 1)
            if not self._time(job, problems):
                counts.not_timed += 1
        for queue, status, grown in outcome.kept_forever:  # counted, never timed
            counts = self._counts(queue)
            setattr(counts, status, getattr(counts, status) + grown)
            counts.not_timed += grown
        return problems

    def _time(self, job: Ended, problems: list[Problem]) -> bool:
        """Observes the job's run and wait time; False when it cannot be timed."""
        if job.fields is None or job.ended is None:
            return False
        try:
            started = parse.timestamp(job.fields.get(b"started_at"))
            enqueued = parse.timestamp(job.fields.get(b"enqueued_at"))
        except ValueError as error:
            problems.append(Problem("bad_timestamp", parse.text(self.keys.job(job.member)), str(error)[:200]))
            return False
        if started is None:
            return False
        func = self._func(job.fields.get(b"data")) if self.func_label else None
        self._histogram(self.durations, (job.queue, job.status, func)).observe(
            self.bounds, max(0.0, job.ended - started))
        if enqueued is not None:
            self._histogram(self.waits, (job.queue, func)).observe(self.bounds, max(0.0, started - enqueued))
        return True

    def _counts(self, queue: str) -> QueueCounts:
        counts = self.counts.get(queue)
        if counts is None:
            counts = self.counts[queue] = QueueCounts()
        return counts

    def _func(self, data: bytes | None) -> str:
        name = jobfunc.function_name(data) or "unknown"
        if name in self.funcs:
            return name
        if len(self.funcs) < self.func_limit:
            self.funcs.add(name)
            return name
        return "other"

    def _histogram(self, histograms: dict[tuple, Histogram], key: tuple) -> Histogram:
        histogram = histograms.get(key)
        if histogram is None:
            histogram = histograms[key] = Histogram(len(self.bounds) + 1)
        return histogram

    def families(self, queues: Iterable[str] = ()) -> Iterator[Metric]:
        """Every known queue has its counters at 0; a histogram series appears with its first job.

        Zero histograms would be 48 samples per idle queue (most of a 1,000-queue scrape) that
        say nothing the counters do not: rq_jobs_finished_total is 0 there.
        """
        extra = ("func",) if self.func_label else ()
        keep = slice(None, None if self.func_label else -1)  # the func key part, without the label
        yield histogram_table("rq_job_duration_seconds", extra, self.les, [
            (key[keep], h.cumulative, h.sum) for key, h in sorted(self.durations.items(), key=_sort_key)])
        yield histogram_table("rq_job_wait_seconds", extra, self.les, [
            (key[keep], h.cumulative, h.sum) for key, h in sorted(self.waits.items(), key=_sort_key)])
        zero = QueueCounts()
        rows = [((name,), self.counts.get(name) or zero) for name in sorted(set(self.counts) | set(queues))]
        for status in REGISTRIES:
            yield table(f"rq_jobs_{status}_total", [(queue, getattr(c, status)) for queue, c in rows])
        yield table("rq_exporter_jobs_not_timed_total", [(queue, c.not_timed) for queue, c in rows])


def _sort_key(item: tuple) -> tuple:
    return tuple("" if part is None else part for part in item[0])
