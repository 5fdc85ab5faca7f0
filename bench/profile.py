"""Where a scrape's time goes, in this process (no HTTP, no peer), and what histograms cost.

    .venv/bin/python bench/profile.py                         # 1000 queues, 200 workers, 1M jobs
    .venv/bin/python bench/profile.py --queues 10 --workers 5 --jobs 1000 --scrapes 5   # a smoke run

Starts its own redis-server, fills it with bench/dataset.py, then times, over --scrapes scrapes
run back to back with the garbage collector paused (as exposition.py pauses it):
- the whole scrape (collect + write) before and after every queue's run-time and wait-time
  histograms have an observation (the busy-fleet case: 48 more samples per queue), and this
  process's peak RSS by then;
- the phases of a scrape as shipped (job timing on): reading Redis, and within it each round
  trip; the concerns' results (job timing's bookkeeping, mostly); building the metric families;
  writing them (OpenMetrics).
Figures are the minimum and the median.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run by path (python bench/profile.py): devkit, bench.* are at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from bench.dataset import Size, fill
from devkit import RedisServer
from rq_exporter_ng import batch
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.concern import Concerns
from rq_exporter_ng.concerns import CONCERNS
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.concerns.timing.records import Ended, Outcome
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS
from rq_exporter_ng.connection import connect
from rq_exporter_ng.families.core import rq_families
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.loading import load
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.web import exposition

ACCEPT = "application/openmetrics-text;version=1.0.0"


def line(label: str, times: list[float], extra: str = "") -> str:
    return f"{label:40} min {min(times):7.2f}  median {statistics.median(times):7.2f} ms{extra}"


def phases(url: str, scrapes: int) -> dict[str, list[float]]:
    settings = load(["--redis-url", url])
    client, keys = connect(settings), Keys(settings.key_prefix)
    concerns = Concerns(CONCERNS, settings, keys)
    found: dict[str, list[float]] = {}
    rounds: list[float] = []
    run = batch.Batch.run

    def timed_run(self, client) -> None:
        start = time.perf_counter()
        run(self, client)
        rounds.append(time.perf_counter() - start)

    batch.Batch.run = timed_run
    try:
        for i in range(scrapes + 2):  # two to settle the timing state
            rounds.clear()
            t0 = time.perf_counter()
            scrape = concerns.begin()
            snapshot = read_snapshot(client, keys, extras=scrape.extras)
            t1 = time.perf_counter()
            snapshot, results = concerns.finish(scrape, snapshot)
            t2 = time.perf_counter()
            families = list(rq_families(snapshot)) + list(concerns.families(results))
            t3 = time.perf_counter()
            exposition.render_openmetrics(families)
            t4 = time.perf_counter()
            if i < 2:
                continue
            named = {"read Redis": t1 - t0, **{f"  round {n + 1}": t for n, t in enumerate(rounds)},
                     "concerns' results": t2 - t1, "metric families": t3 - t2, "writing": t4 - t3, "total": t4 - t0}
            for name, seconds in named.items():
                found.setdefault(name, []).append(seconds * 1000)
    finally:
        batch.Batch.run = run
    return found


def whole(registry: CollectorRegistry, scrapes: int) -> tuple[list[float], int]:
    times, lines = [], 0
    for _ in range(scrapes):
        start = time.perf_counter()
        body, _ = exposition.render(registry, ACCEPT)
        times.append((time.perf_counter() - start) * 1000)
        lines = body.count(b"\n")
    return times, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        fill("127.0.0.1", server.port, Size(args.queues, args.workers, args.jobs))
        url = f"redis://127.0.0.1:{server.port}/0"
        print(f"{args.queues} queues, {args.workers} workers, {args.jobs} jobs; {args.scrapes} scrapes each")
        gc.disable()
        settings = load(["--redis-url", url])
        collector = RQCollector(connect(settings), settings)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        whole(registry, 3)
        times, lines = whole(registry, args.scrapes)
        print(line("whole scrape, no histograms", times, f"  ({lines} lines)"))
        timing = collector._concerns.of(JobTiming)
        assert timing is not None
        timed = {b"started_at": b"2026-01-01T00:00:00.000000Z", b"enqueued_at": b"2026-01-01T00:00:00.000000Z"}
        fields = [timed.get(name) for name in JOB_FIELDS]  # the HMGET answer, in JOB_FIELDS order
        when = 1767225601.5  # 1.5 s after started_at
        timing.times.record(Outcome(tuple(
            Ended(queue, status, b"x", when, fields)
            for queue in timing.tracker.queues for status in ("finished", "failed")), (), ()))
        times, lines = whole(registry, args.scrapes)
        print(line("whole scrape, every queue's histograms", times, f"  ({lines} lines)"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS so far (one exporter's state) {peak:.1f} MB")
        del registry, collector, timing
        for name, times in phases(url, args.scrapes).items():
            print(line(name, times))
    finally:
        gc.enable()
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
