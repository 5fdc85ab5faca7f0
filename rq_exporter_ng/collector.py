"""The prometheus_client collector: each collect() reads a fresh snapshot and yields families.

A Redis that cannot be read is not an error of the scrape: it becomes ``rq_up 0`` next to
the exporter's own metrics, and the process keeps serving until Redis is back.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from rq_exporter_ng.concern import Concerns, Results
from rq_exporter_ng.concerns import CONCERNS
from rq_exporter_ng.connection import follow_master, redacted_target
from rq_exporter_ng.families.catalogue import GLOBAL_FAMILIES
from rq_exporter_ng.families.core import ExporterFigures, ExporterStats, described, exporter_families, rq_families
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.queue_reads import Quiet
from rq_exporter_ng.reader import RoundReads, read_snapshot
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.singleflight import SingleFlight
from rq_exporter_ng.snapshot import Problem, Snapshot

log = logging.getLogger("rq_exporter")

# Problems are logged once each; past this many distinct ones only the counter grows.
MAX_LOGGED_PROBLEMS = 10_000


@dataclass(frozen=True)
class Scraped:
    """One scrape's read, as every caller that shares it gets it: what its families are made of.

    Immutable, and so are its parts (the snapshot, the concerns' results, the counters as this
    scrape left them), so that no caller's families depend on when it builds them."""

    snapshot: Snapshot | None  # None: Redis could not be read
    results: Results
    figures: ExporterFigures
    duration: float  # the read and the concerns' results, in seconds


class RQCollector(Collector):
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._keys = Keys(settings.key_prefix)
        self._stats = ExporterStats()
        self._lock = threading.Lock()
        self._flight: SingleFlight[Scraped] = SingleFlight()
        self._logged: set[tuple[str, str]] = set()
        self._down_reason: str | None = None
        self._down_logged = 0.0
        # Each concern keeps what it remembers between scrapes for the life of the process.
        self._concerns = Concerns(CONCERNS, settings, self._keys)
        # Which queues' keys were empty: they are asked about in one EXISTS (queue_reads.py).
        self._quiet = Quiet()

    def describe(self) -> list[Metric]:
        # Registering must not read Redis: the names come from the catalogue.
        return described()

    def collect(self) -> Iterator[Metric]:
        # Scrapes arriving while a read is in flight share it (several Prometheus replicas cost
        # one read); the lock still keeps reads one at a time for the state kept across scrapes.
        # What they share is the read, not its families: each caller builds them one at a time
        # as the writer asks, so a family's rows are dropped once written (at 10,000 queues,
        # every family built at once is ~16 MB held until the last is written).
        yield from self._families(self._flight.run(self._locked_scrape))

    def _locked_scrape(self) -> Scraped:
        with self._lock, gc_paused:
            return self._scrape()

    def _scrape(self) -> Scraped:
        start = time.perf_counter()
        self._stats.scrapes += 1
        scrape = self._concerns.begin()
        snapshot = self._read(scrape.extras)
        if snapshot is None:
            self._stats.errors += 1
            results = self._concerns.unread()
        else:
            # After a successful read only: each concern's memory moves on (a failed read leaves
            # it as it was), and what it counts in rq_jobs is folded into the snapshot.
            snapshot, results = self._concerns.finish(scrape, snapshot)
            self._record(snapshot.problems)
            self._record(tuple(self._concerns.problems(results)))
        duration = time.perf_counter() - start
        self._stats.seconds += duration
        return Scraped(snapshot, results, self._stats.figures(), duration)

    def _families(self, scraped: Scraped) -> Iterator[Metric]:
        """A pure function of the scrape's value (and the settings): callers that share a read
        build the same families, in any order, while the next read runs."""
        snapshot = scraped.snapshot
        round_trips = snapshot.round_trips if snapshot else 0
        yield from exporter_families(scraped.figures, snapshot is not None, scraped.duration, round_trips)
        if snapshot is not None:
            yield from rq_families(snapshot, per_worker=self._settings.per_worker_metrics,
                                   workers=self._settings.exports_globals)
        if self._settings.exports_globals:
            yield from self._concerns.families(scraped.results)
        else:
            # A shard that leaves the global series to another: the catalogue's scope decides, so
            # a concern with both kinds (running jobs: per queue and per worker) needs no flag.
            yield from (f for f in self._concerns.families(scraped.results) if f.name not in GLOBAL_FAMILIES)

    def check(self) -> None:
        """One read at start-up, so that the log says at once whether Redis can be read, and why not.

        Not a scrape: it counts nothing and leaves the timing cursors alone.
        """
        with self._lock:
            snapshot = self._read()
        if snapshot is not None:
            log.info("Redis at %s is readable: %d queues, %d workers", redacted_target(self._settings),
                     len(snapshot.queues), len(snapshot.workers))

    def _read(self, extras: Sequence[RoundReads] = ()) -> Snapshot | None:
        try:
            follow_master(self._client)
            snapshot = read_snapshot(self._client, self._keys, self._settings.wants_queue, extras=extras,
                                     quiet=self._quiet)
        except Exception as error:
            # Redis' refusal, or this exporter's own error (a bug, or a setting the checks let
            # through): either way the scrape answers, rq_up 0 and a scrape error.
            reason = f"{type(error).__name__}: {error}"
            from_redis = isinstance(error, (redis.RedisError, OSError))
            # Once when Redis goes away; a changed reason again, but at most once a minute, so
            # errors that alternate (a refused TLS handshake surfaces two ways) do not log every
            # scrape. Our own errors with their traceback, once a kind.
            now = time.monotonic()
            if self._down_reason is None or (
                    reason != self._down_reason and (not from_redis or now - self._down_logged >= 60)):
                (log.warning if from_redis else log.exception)(
                    "cannot read Redis at %s: %s", redacted_target(self._settings), reason)
                self._down_reason, self._down_logged = reason, now
            return None
        if self._down_reason is not None:
            log.info("Redis at %s is readable again", redacted_target(self._settings))
            self._down_reason = None
        return snapshot

    def _record(self, problems: tuple[Problem, ...]) -> None:
        for problem in problems:
            self._stats.skipped[problem.reason] += 1
            seen = (problem.reason, problem.key)
            if seen not in self._logged and len(self._logged) < MAX_LOGGED_PROBLEMS:
                self._logged.add(seen)
                log.warning("skipped %s (%s): %s", problem.key, problem.reason, problem.detail)


class GcPause:
    """The cyclic garbage collector off while any scrape runs.

    A scrape at 1,000 queues allocates ~100,000 short-lived containers (commands, handlers,
    rows) that all live until it ends, so the collector's generational passes keep traversing
    them, and the whole heap, for nothing: ~20 % of the scrape (docs/benchmarks.md). Reference
    counting still frees them as soon as the scrape is done; a cycle waits for the next
    collection after it. Scrapes in several threads (the /probe targets) share one pause; a
    collector someone else turned off stays off. The server holds it too while it writes the
    body, as the families are built then (web/server.py).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._was_enabled:
                gc.enable()


gc_paused = GcPause()
