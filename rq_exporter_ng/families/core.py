"""The core families: the snapshot's (queues and workers) and the exporter's own; a pure function
of the snapshot and the exporter's counters, so it is tested without Redis."""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter

from prometheus_client.core import Metric, SummaryMetricFamily

from rq_exporter_ng import __version__
from rq_exporter_ng.families.catalogue import CATALOGUE, JOB_STATUSES, spec
from rq_exporter_ng.families.table import column, grid, table
from rq_exporter_ng.snapshot import WORKER_STATES, Snapshot, WorkerState


@dataclass
class ExporterStats:
    """The exporter's own counters, kept across scrapes by the collector."""

    scrapes: int = 0
    errors: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # total time spent in scrapes

    def figures(self) -> ExporterFigures:
        return ExporterFigures(self.scrapes, self.errors, tuple(sorted(self.skipped.items())), self.seconds)


@dataclass(frozen=True)
class ExporterFigures:
    """The counters as one scrape left them: every caller that shares the scrape writes these,
    whatever later scrapes count meanwhile."""

    scrapes: int
    errors: int
    skipped: tuple[tuple[str, int], ...]  # (reason, count), by reason
    seconds: float


def exporter_families(figures: ExporterFigures, up: bool, duration: float, round_trips: int) -> Iterator[Metric]:
    yield table("rq_up", [((), 1 if up else 0)])
    yield table("rq_exporter_scrape_duration_seconds", [((), duration)])
    yield table("rq_exporter_redis_round_trips", [((), round_trips)])
    yield table("rq_exporter_scrapes_total", [((), figures.scrapes)])
    yield table("rq_exporter_scrape_errors_total", [((), figures.errors)])
    yield table("rq_exporter_skipped_total", [((reason,), count) for reason, count in figures.skipped])
    yield table("rq_exporter_build_info", [((__version__, platform.python_version()), 1)])
    processing = spec("rq_request_processing_seconds")
    yield SummaryMetricFamily(processing.name, processing.help, count_value=figures.scrapes,
                              sum_value=figures.seconds)


def described() -> list[Metric]:
    """One empty family per catalogued metric: what the collector's describe() says, so that the
    registry knows which names it serves (/metrics?name[]=... filters on them) without reading Redis."""
    return [Metric(s.name.removesuffix("_total") if s.type == "counter" else s.name, s.help, s.type)
            for s in CATALOGUE]


def rq_families(snapshot: Snapshot, per_worker: bool = True, workers: bool = True) -> Iterator[Metric]:
    """``workers`` False: a shard that leaves the worker series (scope global) to another."""
    yield from _queue_families(snapshot)
    if workers:
        yield from _worker_families(snapshot.workers, snapshot.dead_workers)
    if workers and per_worker:
        yield from _per_worker_families(snapshot.workers)


def _queue_families(snapshot: Snapshot) -> Iterator[Metric]:
    queues = snapshot.queues
    names = [q.name for q in queues]  # every per-queue family's keys, in order
    yield grid("rq_jobs", names, JOB_STATUSES, list(map(attrgetter(*JOB_STATUSES), queues)))
    yield table("rq_queue_oldest_job_age_seconds",
                [((q.name,), q.oldest_job_age) for q in queues if q.oldest_job_age is not None])
    yield column("rq_queue_intermediate_jobs", names, list(map(attrgetter("intermediate"), queues)))
    yield column("rq_queue_abandoned_jobs", names, list(map(attrgetter("abandoned"), queues)))
    yield column("rq_queue_overdue_scheduled_jobs", names, list(map(attrgetter("overdue_scheduled"), queues)))
    yield column("rq_queue_scheduler_active", names, [1 if q.scheduler_active else 0 for q in queues])
    per_queue = _workers_per_queue(names + list(snapshot.worker_only_queues), snapshot.workers)
    if all(len(counts) == len(WORKER_STATES) for counts in per_queue.values()):  # no worker in state "unknown"
        yield grid("rq_queue_workers", list(per_queue), WORKER_STATES, [tuple(c.values()) for c in per_queue.values()])
    else:
        yield table("rq_queue_workers", [((name, state), count) for name, counts in per_queue.items()
                                         for state, count in counts.items()])


def _workers_per_queue(names: Iterable[str], workers: Iterable[WorkerState]) -> dict[str, dict[str, int]]:
    """Every queue gets every known state (0 included), so "no worker" is a value, not a gap."""
    per_queue = {name: dict.fromkeys(WORKER_STATES, 0) for name in names}
    for worker in workers:
        for name in worker.queues:
            if name in per_queue:
                counts = per_queue[name]
                counts[worker.state] = counts.get(worker.state, 0) + 1
    return per_queue


def _worker_families(workers: tuple[WorkerState, ...], dead: int) -> Iterator[Metric]:
    counts = Counter(w.state for w in workers)
    states = dict.fromkeys(WORKER_STATES + tuple(sorted(counts)))
    yield table("rq_live_workers", [((state,), counts.get(state, 0)) for state in states])
    yield table("rq_dead_workers", [((), dead)])


def _per_worker_families(workers: tuple[WorkerState, ...]) -> Iterator[Metric]:
    labelled = [(w, (w.name, ",".join(w.queues))) for w in workers]
    yield table("rq_workers", [((*names, w.state), 1) for w, names in labelled])
    # A counter that could not be read is left out for that scrape, not reported as 0.
    yield table("rq_workers_success_total",
                [(names, w.successful_jobs) for w, names in labelled if w.successful_jobs is not None])
    yield table("rq_workers_failed_total",
                [(names, w.failed_jobs) for w, names in labelled if w.failed_jobs is not None])
    yield table("rq_workers_working_time_total",
                [(names, w.working_seconds) for w, names in labelled if w.working_seconds is not None])
    yield table("rq_worker_last_heartbeat_timestamp_seconds",
                [(names, w.last_heartbeat) for w, names in labelled if w.last_heartbeat is not None])
