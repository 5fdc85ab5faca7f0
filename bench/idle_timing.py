"""Job timing's cost for idle queues, in this process: plan, commands and their packing, replies,
select and apply, against a real redis-server whose registries are empty (every queue idle).

    .venv/bin/python bench/idle_timing.py --queues 10000 --scrapes 15

Run by path with another environment's python (``/tmp/base/.venv/bin/python bench/idle_timing.py``)
it times that environment's installed rq_exporter_ng: nothing here puts this checkout on the path.
Prints CPU ms a scrape per phase (median and minimum over --scrapes, after two scrapes that settle
the registries) and, traced with tracemalloc in a second pass, the tracker's state kept between
scrapes and the peak of a scrape above it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc

import redis

from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.concerns.timing.reads import TimingReads
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.loading import load

try:
    from devkit import RedisServer
except ImportError:  # run by path from bench/: devkit is at the repository root
    import sys
    from pathlib import Path

    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from devkit import RedisServer


def _error(command: tuple, error: Exception) -> None:
    raise AssertionError(f"{command!r}: {error!r}")


def scrape(timing: JobTiming, client: redis.Redis, queues: list[tuple[bytes, str]], now: float,
           clock=time.process_time) -> dict[str, float]:
    t0 = clock()
    reads = TimingReads(timing, skip=())
    batch = Batch(_error)
    reads.second(batch, queues, now)
    batch.run(client)  # plan, commands, packing, replies
    t1 = clock()
    reads.third(Batch(_error))  # select
    t2 = clock()
    assert reads.plan is not None and reads.selection is not None and not reads.selection.to_read
    timing.tracker.apply(reads.plan, reads.replies, reads.selection, reads.hashes, {name: 0 for _, name in queues})
    t3 = clock()
    return {"round 2 (plan, commands, replies)": t1 - t0, "select": t2 - t1, "apply": t3 - t2, "total": t3 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=15)
    args = parser.parse_args()
    queues = [(f"bench-queue-{i:05d}".encode(), f"bench-queue-{i:05d}") for i in range(args.queues)]
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url, protocol=2)
        settings = load(["--redis-url", server.url])
        options = JobTiming.options(settings)
        assert options is not None
        now = time.time()
        gc.disable()
        timing = JobTiming(options, Keys(settings.key_prefix))
        found: dict[str, list[float]] = {}
        for i in range(args.scrapes + 2):
            now += 15
            figures = scrape(timing, client, queues, now)
            if i >= 2:
                for name, seconds in figures.items():
                    found.setdefault(name, []).append(seconds * 1000)
        print(f"{args.queues} idle queues ({2 * args.queues} registries), {args.scrapes} scrapes")
        for name, ms in found.items():
            print(f"{name:36} median {statistics.median(ms):7.2f}  min {min(ms):7.2f} ms CPU")
        del timing
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        timing = JobTiming(options, Keys(settings.key_prefix))
        for _ in range(3):
            now += 15
            scrape(timing, client, queues, now)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        now += 15
        scrape(timing, client, queues, now)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        gc.enable()
        print(f"{'state kept between scrapes':36} {(kept - base) / 1e6:7.2f} MB traced")
        print(f"{'a scrape above it (peak)':36} {(peak - kept) / 1e6:7.2f} MB traced")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
