"""What job timing costs a scrape: with idle registries of growing size, and per newly ended job.

    .venv/bin/python bench/timing.py                    # 100 queues; registries of 100 and 5,000 entries
    .venv/bin/python bench/timing.py --queues 10 --sizes 10,100 --bursts 100   # a smoke run

Starts its own redis-server on a free loopback port, fills the finished registries the way RQ
does (score = end second + result_ttl 500; a job hash for each new job), and times the
exporter's collector in this process (no HTTP) with --job-timing and --no-job-timing:

- idle: the median scrape time and Redis commands per scrape once nothing new ends, for each
  registry size (the claim: it does not grow with the registry);
- burst: the time of the scrape that finds N jobs that ended since the previous one.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import time
import zlib
from pathlib import Path

if __package__ in (None, ""):  # run by path (python bench/timing.py): devkit, bench.* are at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from devkit import RedisServer, rq_time
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.connection import connect
from rq_exporter_ng.settings import load
from rq_exporter_ng.web.exposition import render


def fill_history(r, queues: int, size: int) -> None:
    """``size`` finished entries per queue that ended before the exporter started (no hashes needed)."""
    now = int(time.time())
    for q in range(queues):
        r.sadd("rq:queues", f"rq:queue:q{q}")
        members = {f"old-{q}-{i}": now - 1 - (i % 400) + 500 for i in range(size)}
        for start in range(0, size, 10_000):
            chunk = dict(list(members.items())[start:start + 10_000])
            r.zadd(f"rq:finished:q{q}", chunk)


def end_jobs(r, queue: str, count: int, tag: str) -> None:
    now = time.time()
    data = zlib.compress(pickle.dumps(("app.tasks.work", None, (), {}), protocol=5))
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        key = f"rq:job:{tag}-{i}"
        pipe.hset(key, mapping={"status": "finished", "enqueued_at": rq_time(now - 2),
                                "started_at": rq_time(now - 1), "ended_at": rq_time(now), "data": data})
        pipe.zadd(f"rq:finished:{queue}", {f"{tag}-{i}": int(now) + 500})
    pipe.execute()


def commands(r) -> int:
    return sum(v["calls"] for k, v in r.info("commandstats").items() if k != "cmdstat_info")


class Scraper:
    def __init__(self, url: str, *args: str) -> None:
        settings = load(["--redis-url", url, *args])
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RQCollector(connect(settings), settings))

    def scrape(self) -> float:
        start = time.perf_counter()
        render(self.registry, None)  # as /metrics writes it (exposition.py), not the library
        return time.perf_counter() - start


def idle(url: str, r, runs: int) -> dict[str, tuple[float, float]]:
    """Scrapes with and without timing take turns, so a busy machine slows both alike."""
    scrapers = {"timing on": Scraper(url), "timing off": Scraper(url, "--no-job-timing")}
    times: dict[str, list[float]] = {label: [] for label in scrapers}
    calls = dict.fromkeys(scrapers, 0)
    for scraper in scrapers.values():
        scraper.scrape()
    for _ in range(runs):
        for label, scraper in scrapers.items():
            before = commands(r)
            times[label].append(scraper.scrape())
            calls[label] += commands(r) - before
    return {label: (statistics.median(times[label]) * 1000, calls[label] / runs) for label in scrapers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--sizes", default="100,5000", help="finished entries per queue (comma-separated)")
    parser.add_argument("--bursts", default="1000,10000", help="jobs ending between two scrapes")
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()

    server = RedisServer().start()
    try:
        r = server.client()
        print(f"idle scrape, {options.queues} queues (median of {options.runs}):")
        for size in (int(s) for s in options.sizes.split(",")):
            r.flushall()
            fill_history(r, options.queues, size)
            for label, (ms, cmds) in idle(server.url, r, options.runs).items():
                print(f"  {size:>7} entries/queue  {label:<10}  {ms:8.1f} ms  {cmds:8.0f} commands/scrape")
        print("scrape finding N newly ended jobs (1 queue, timing on):")
        for burst in (int(b) for b in options.bursts.split(",")):
            r.flushall()
            r.sadd("rq:queues", "rq:queue:burst")
            scraper = Scraper(server.url, "--timing-max-jobs-per-scrape", str(max(burst, 10_000)))
            scraper.scrape()
            quiet = statistics.median(scraper.scrape() for _ in range(5))
            end_jobs(r, "burst", burst, f"b{burst}")
            found = scraper.scrape()
            print(f"  {burst:>7} jobs  {found * 1000:8.1f} ms  (quiet scrape {quiet * 1000:.1f} ms; "
                  f"{(found - quiet) / burst * 1e6:.1f} us per job)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
