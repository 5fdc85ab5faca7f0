"""Job timing's metric side: the jobs the tracker found ended become counters and histograms.

Kept for the life of the process: rq_jobs_finished_total / rq_jobs_failed_total per queue,
rq_exporter_jobs_not_timed_total, and the run time (ended_at - started_at) and wait time
(started_at - enqueued_at) histograms, by queue (and status, and function with the func label).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from rq_exporter_ng import jobfunc, parse
from rq_exporter_ng.concerns.timing.records import Ended, Outcome
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS
from rq_exporter_ng.concerns.timing.stamps import stamp
from rq_exporter_ng.concerns.timing.tracker import REGISTRIES
from rq_exporter_ng.families.table import HistogramRow, JobExemplar, Row, histogram_table, table
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.snapshot import Problem

if TYPE_CHECKING:
    from rq_exporter_ng.concerns.timing.job_timing import TimingOptions


class Histogram:
    __slots__ = ("_cumulative", "counts", "exemplars", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0
        self._cumulative: list[int] | None = None  # rebuilt only after an observation
        # Per bucket, its latest job (OpenMetrics exemplars: from a latency spike to the job).
        self.exemplars: list[JobExemplar | None] = [None] * size

    def observe_all(self, bounds: tuple[float, ...], values: list[float], jobs: list[Ended]) -> None:
        """Each value observed in turn, its job the exemplar of its bucket when it ended last (a tie:
        the later job). The plain form of what ``JobTimes.observe``'s loop does inline (with ``start``
        and ``finish``): the counts and the sum (added in the same order) are what prometheus_client's
        Histogram makes of the same observations (tests/concerns/timing/test_timing_histograms.py)."""
        counts, total, best, latest, latest_values = self.start()
        for value, job in zip(values, jobs):
            i = bisect_left(bounds, value)
            counts[i] += 1
            total += value
            ended = job[3] or 0.0
            if ended >= best[i]:
                best[i], latest[i], latest_values[i] = ended, job, value
        self.finish(total, latest, latest_values)

    def start(self) -> tuple[list[int], float, list[float], list[Ended | None], list[float]]:
        """A run of observations: the counts (changed in place), the sum so far, per bucket the end
        time its next exemplar must reach, and per bucket the run's latest job and value."""
        best = [-math.inf if e is None else (e[2] or 0.0) for e in self.exemplars]
        return self.counts, self.sum, best, [None] * len(best), [0.0] * len(best)

    def finish(self, total: float, latest: list[Ended | None], values: list[float]) -> None:
        """The run's sum and exemplars (``start``) kept."""
        self.sum = total
        self._cumulative = None
        exemplars = self.exemplars
        for i, job in enumerate(latest):
            if job is not None:
                exemplars[i] = (job[2], values[i], job[3])  # member, ended (records.Ended)

    def copy(self) -> Histogram:
        histogram = Histogram(0)
        histogram.counts, histogram.sum, histogram.exemplars = self.counts.copy(), self.sum, self.exemplars.copy()
        return histogram

    @property
    def cumulative(self) -> list[int]:
        """The count of each bucket as exposed: observations up to its bound."""
        if self._cumulative is None:
            self._cumulative = list(accumulate(self.counts))
        return self._cumulative


STARTED, ENQUEUED, DATA = (JOB_FIELDS.index(f) for f in (b"started_at", b"enqueued_at", b"data"))


@dataclass(frozen=True)
class HistogramRows:
    name: str
    extra_labels: tuple[str, ...]
    les: tuple[str, ...]
    rows: list[HistogramRow]
    exemplars: list[tuple[JobExemplar | None, ...]]


@dataclass(frozen=True)
class Draft:
    """One scrape's observations, apart from the kept ones until ``JobTimes.commit``: a scrape that
    fails half way records nothing."""

    counts: dict[str, Counter[str]]  # "finished", "failed", "not_timed" -> queue -> jobs this scrape
    durations: dict[tuple, Histogram]  # copies of the histograms observed, or new ones
    waits: dict[tuple, Histogram]
    funcs: set[str]  # function names first seen
    problems: list[Problem]


@dataclass(frozen=True)
class JobTotals:
    """The counters and histograms as they stand after a scrape: the families' data, apart from
    the tracker's state that goes on changing."""

    histograms: tuple[HistogramRows, ...]
    counters: tuple[tuple[str, list[Row]], ...]


def families(totals: JobTotals) -> Iterator[Metric]:
    for h in totals.histograms:
        yield histogram_table(h.name, h.extra_labels, h.les, h.rows, h.exemplars)
    for name, rows in totals.counters:
        yield table(name, rows)


class JobTimes:
    def __init__(self, options: TimingOptions, keys: Keys) -> None:
        self.bounds = tuple(float(b) for b in options.timing_buckets)
        self.les = tuple(floatToGoString(b) for b in self.bounds) + ("+Inf",)
        self.func_label = options.timing_func_label
        self.func_limit = options.timing_func_limit
        self.keys = keys
        # "finished", "failed", "not_timed" -> queue -> jobs since the exporter started
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in (*REGISTRIES, "not_timed")}
        self.durations: dict[tuple, Histogram] = {}  # (queue, status, func or None)
        self.waits: dict[tuple, Histogram] = {}  # (queue, func or None)
        self.funcs: set[str] = set()

    def record(self, outcome: Outcome, draft: Draft | None = None, observed: int = 0) -> list[Problem]:
        """The jobs of ``outcome`` counted and timed, and its problems. ``draft``: where the first
        ``observed`` of its jobs were observed already (job timing does as their registries are
        judged ahead, in round 3)."""
        if draft is None:
            draft = self.draft()
        self.observe(draft, outcome.ended[observed:] if observed else outcome.ended)
        return self.commit(draft, outcome.kept_forever)

    def draft(self) -> Draft:
        return Draft({name: Counter() for name in self.counts}, {}, {}, set(), [])

    def commit(self, draft: Draft, kept_forever: Iterable[tuple[str, str, int]] = ()) -> list[Problem]:
        """What ``draft`` observed kept, with the growth of the jobs kept forever (counted, never
        timed); its problems."""
        for name, counts in draft.counts.items():
            self.counts[name].update(counts)
        self.durations.update(draft.durations)
        self.waits.update(draft.waits)
        self.funcs |= draft.funcs
        for queue, status, grown in kept_forever:
            self.counts[status][queue] += grown
            self.counts["not_timed"][queue] += grown
        return draft.problems

    def observe(self, draft: Draft, jobs: Iterable[Ended]) -> None:
        """``jobs`` counted and timed in ``draft``: nothing here changes until ``commit``."""
        problems = draft.problems
        counts, not_timed = draft.counts, draft.counts["not_timed"]
        # Jobs counted a run of one (queue, status) at a time (a Counter of the pairs costs ~150 ns a job).
        count_queue: str | None = None
        count_status = ""
        count = 0
        # Jobs come registry by registry: each run of one histogram's jobs is observed as in
        # Histogram.observe_all, inline (this loop is the whole per-job work: 75,000 jobs a scrape at
        # 5,000 jobs/s), the run's state in locals (``start``, ``finish``).
        key_queue: str | None = None  # the histogram of the current run: (key_queue, key_status, key_func)
        key_status = key_func = None
        func_label, bounds = self.func_label, self.bounds
        func = None
        started_at, enqueued_at = STARTED, ENQUEUED
        runs: Histogram | None = None  # the run's duration histogram, and its wait histogram once it has a wait
        waits: Histogram | None = None
        r_counts: list[int] = []
        w_counts: list[int] = []
        r_best: list[float] = []
        w_best: list[float] = []
        r_jobs: list[Ended | None] = []
        w_jobs: list[Ended | None] = []
        r_values: list[float] = []
        w_values: list[float] = []
        r_sum = w_sum = 0.0
        for job in jobs:
            queue, status, _, ended, answer = job
            if queue != count_queue or status != count_status:
                if count_queue is not None:
                    counts[count_status][count_queue] += count
                count_queue, count_status, count = queue, status, 0
            count += 1
            if answer is None or ended is None:
                not_timed[queue] += 1
                continue
            started, enqueued = answer[started_at], answer[enqueued_at]
            try:  # floats mostly, read as they arrived (stamps.read_stamps): stamp() would return them
                if type(started) is not float:
                    started = stamp(started)
                if type(enqueued) is not float:
                    enqueued = stamp(enqueued)
            except ValueError as error:
                problems.append(Problem("bad_timestamp", parse.text(self.keys.job(job[2])), str(error)[:200]))
                not_timed[queue] += 1
                continue
            if started is None:
                not_timed[queue] += 1
                continue
            if func_label:
                data = answer[DATA] if len(answer) > DATA else None
                func = self._func(data if isinstance(data, bytes) else None, draft.funcs)  # never a timestamp
            if queue != key_queue or status != key_status or func != key_func:
                if runs is not None:
                    runs.finish(r_sum, r_jobs, r_values)
                if waits is not None:
                    waits.finish(w_sum, w_jobs, w_values)
                key_queue, key_status, key_func = queue, status, func
                runs = self._histogram(draft.durations, self.durations, (queue, status, func))
                r_counts, r_sum, r_best, r_jobs, r_values = runs.start()
                waits = None  # made with the run's first wait: a histogram series appears with its first job
            last = ended or 0.0
            run = ended - started
            run = run if run > 0.0 else 0.0  # max(0.0, run), NaN included
            i = bisect_left(bounds, run)
            r_counts[i] += 1
            r_sum += run
            if last >= r_best[i]:
                r_best[i], r_jobs[i], r_values[i] = last, job, run
            if enqueued is not None:
                if waits is None:
                    waits = self._histogram(draft.waits, self.waits, (queue, func))
                    w_counts, w_sum, w_best, w_jobs, w_values = waits.start()
                wait = started - enqueued
                wait = wait if wait > 0.0 else 0.0
                i = bisect_left(bounds, wait)
                w_counts[i] += 1
                w_sum += wait
                if last >= w_best[i]:
                    w_best[i], w_jobs[i], w_values[i] = last, job, wait
        if count_queue is not None:
            counts[count_status][count_queue] += count
        if runs is not None:
            runs.finish(r_sum, r_jobs, r_values)
        if waits is not None:
            waits.finish(w_sum, w_jobs, w_values)

    def _func(self, data: bytes | None, drafted: set[str]) -> str:
        name = jobfunc.function_name(data) or "unknown"
        if name in self.funcs or name in drafted:
            return name
        if len(self.funcs) + len(drafted) < self.func_limit:
            drafted.add(name)
            return name
        return "other"

    def _histogram(self, drafted: dict[tuple, Histogram], kept: dict[tuple, Histogram], key: tuple) -> Histogram:
        """The draft's copy of a histogram, made from the kept one (or empty) when first observed."""
        histogram = drafted.get(key)
        if histogram is None:
            old = kept.get(key)
            histogram = drafted[key] = Histogram(len(self.bounds) + 1) if old is None else old.copy()
        return histogram

    def forget(self, queue: str) -> None:
        for counts in self.counts.values():
            counts.pop(queue, None)
        for histograms in (self.durations, self.waits):
            for key in [key for key in histograms if key[0] == queue]:
                del histograms[key]

    def queues(self) -> set[str]:
        """The queues with a counter or a histogram."""
        return {*(q for counts in self.counts.values() for q in counts),
                *(key[0] for key in self.durations), *(key[0] for key in self.waits)}

    def totals(self, queues: Iterable[str]) -> JobTotals:
        """Every queue of ``queues`` or counted has its counters at 0; a histogram series appears
        with its first job.

        Zero histograms would be 48 samples per idle queue (most of a 1,000-queue scrape) that
        say nothing the counters do not: rq_jobs_finished_total is 0 there.
        """
        extra = ("func",) if self.func_label else ()
        keep = slice(None, None if self.func_label else -1)  # the func key part, without the label
        histograms = []
        for name, kept in (("rq_job_duration_seconds", self.durations), ("rq_job_wait_seconds", self.waits)):
            ordered = sorted(kept.items(), key=_sort_key)
            # A scrape's draft replaces the histograms it observed (commit) rather than changing
            # them; the exemplars' list is copied all the same (40-odd lists a scrape), so that no
            # later change can reach a family already handed out.
            histograms.append(HistogramRows(name, extra, self.les,
                                            [(key[keep], h.cumulative, h.sum) for key, h in ordered],
                                            [tuple(h.exemplars) for _, h in ordered]))
        names = sorted(set(queues).union(*self.counts.values()))
        counters: list[tuple[str, list[Row]]] = []
        for status in REGISTRIES:
            counts = self.counts[status]
            counters.append((f"rq_jobs_{status}_total", [((name,), counts[name]) for name in names]))
        not_timed = self.counts["not_timed"]
        counters.append(("rq_exporter_jobs_not_timed_total", [((name,), not_timed[name]) for name in names]))
        return JobTotals(tuple(histograms), tuple(counters))


def _sort_key(item: tuple) -> tuple:
    return tuple("" if part is None else part for part in item[0])
