"""What job timing costs a scrape: with idle registries of growing size, and per newly ended job.

    .venv/bin/python bench/timing.py                    # 100 queues; registries of 100 and 5,000 entries
    .venv/bin/python bench/timing.py --queues 10 --sizes 10,100 --bursts 100   # a smoke run

Starts its own redis-server on a free loopback port, fills the finished registries the way RQ
does (score = end second + result_ttl 500; a job hash for each new job), and times the
exporter's collector in this process (no HTTP) with --job-timing and --no-job-timing:

- idle: the median scrape time and Redis commands per scrape once nothing new ends, for each
  registry size (the claim: it does not grow with the registry);
- burst: the time of the scrape that finds N jobs that ended since the previous one.

    .venv/bin/python bench/timing.py --steady 1000 --queues 20            # 1,000 jobs/s, a scrape every 15 s
    .venv/bin/python bench/timing.py --steady 5000 --queues 20 --cap 80000 --trace

--steady RATE instead: jobs end at RATE per second over --queues queues (the fields
bench/throughput.py's writer leaves, 5 % failed, each failure with its Result stream), written between
scrapes --interval seconds apart on a virtual clock (the reader's ``time.time()``), so a scrape
finds RATE x interval new jobs and re-reads the windows' overlap as at that rate, without waiting
or a writer competing for the CPU. Per scrape: wall and CPU time with and without job timing, and
CPU per timed job; --trace adds tracemalloc's peak during the last scrape (slow: its timings are
not comparable). The per-job CPU figure for decisions; bench/throughput.py for the real thing.
"""

from __future__ import annotations

import argparse
import base64
import os
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
from rq_exporter_ng.collector import RQCollector, gc_paused
from rq_exporter_ng.connection import connect
from rq_exporter_ng.loading import load
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
        # As /metrics writes it (exposition.py, not the library's), the garbage collector paused for
        # the families too, as web/server.py holds it: the scrape's records are let go before it
        # runs again, rather than traversed by a collection first (~3 ms a scrape at 1,000 jobs/s).
        with gc_paused:
            self.body = render(self.registry, None)[0]
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


class VirtualClock:
    """The exporter's clock in ``steady``: scrapes 15 s apart without waiting 15 s (reader.py reads
    ``time.time()`` once per scrape)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


class Rounds:
    """``--rounds``: each round trip's wall and CPU time, how long of it this process sat in
    ``recv`` waiting for Redis (replies.py, batch.py's raw path), and the CPU Redis used meanwhile
    (INFO's ``used_cpu_*``, asked before and after the round, outside its times). Only while
    ``active``: the timing-on scrapes."""

    def __init__(self) -> None:
        from rq_exporter_ng import batch, replies

        self.batch, self.replies = batch, replies
        self.run, self.receive = batch.Batch.run, replies._receive
        self.active = False
        self.rows: list[list[float]] = []  # per round: wall, CPU, blocked in recv, Redis CPU (s)
        rounds = self

        def run(self_, client) -> None:
            if not rounds.active:
                return rounds.run(self_, client)
            row = [0.0, 0.0, 0.0, 0.0]
            rounds.rows.append(row)
            redis_cpu = _redis_cpu(client)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return rounds.run(self_, client)
            finally:
                row[0], row[1] = time.perf_counter() - wall, time.process_time() - cpu
                row[3] = _redis_cpu(client) - redis_cpu

        def receive(sock) -> bytes:
            start = time.perf_counter()
            try:
                return rounds.receive(sock)
            finally:
                if rounds.active and rounds.rows:
                    rounds.rows[-1][2] += time.perf_counter() - start

        batch.Batch.run, replies._receive = run, receive  # type: ignore[method-assign]

    def take(self) -> str:
        rows, self.rows = self.rows, []
        return ", ".join(f"round {k}: {w * 1e3:.1f} wall, {c * 1e3:.1f} CPU, {b * 1e3:.1f} in recv, "
                         f"Redis {r * 1e3:.1f} CPU" for k, (w, c, b, r) in enumerate(rows, 1))

    def remove(self) -> None:
        self.batch.Batch.run, self.replies._receive = self.run, self.receive  # type: ignore[method-assign]


def _redis_cpu(client) -> float:
    """Seconds of CPU the Redis server has used (all its threads)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def write_steady(r, stamps, rng, queues: int, count: int, start: float, span: float, serial: int) -> None:
    """``count`` jobs ending evenly over [start, start + span), as bench/throughput.py's writer leaves
    them (its fields, 5 % failed, each failure's Result stream with its own traceback, which the
    exporter reads for exception classes), without the finished jobs' Result streams, which it does not."""
    from bench.writer import EXC

    data = zlib.compress(pickle.dumps(("app.tasks.send_email", None, (), {}), protocol=5))
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        n = serial + i
        ended = start + span * i / count
        started = ended - min(rng.lognormvariate(-1.6, 1.3), 1800.0)
        enqueued = started - rng.expovariate(2.0)
        failed = n % 20 == 19
        queue = f"q{n % queues:03d}"
        jid = f"{n:08x}-{rng.getrandbits(64):016x}-4000-8000-000000000000"
        pipe.hset(f"rq:job:{jid}", mapping={
            "created_at": stamps(enqueued), "data": data, "started_at": stamps(started), "ended_at": stamps(ended),
            "last_heartbeat": stamps(ended), "worker_name": "w", "origin": queue, "enqueued_at": stamps(enqueued),
            "timeout": "180", "status": "failed" if failed else "finished"})
        registry, ttl = ("failed", 31_536_000) if failed else ("finished", 500)
        pipe.zadd(f"rq:{registry}:{queue}", {jid: int(ended) + ttl})
        if failed:
            exc_string = base64.b64encode(zlib.compress(EXC.encode() % jid.encode()))
            pipe.xadd(f"rq:results:{jid}", {"type": "2", "worker_name": "w", "exc_string": exc_string},
                      maxlen=10, approximate=False)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def steady(url: str, r, rate: int, queues: int, interval: float, scrapes: int, cap: int | None,
           trace: bool, rounds: bool = False) -> None:
    """Scrapes every ``interval`` s of a virtual clock while jobs end at ``rate`` per second: what a
    timed job costs a scrape in this process (CPU), once the windows' overlap is in place."""
    import random
    import tracemalloc

    from bench.writer import Stamps
    from rq_exporter_ng import reader

    clock = VirtualClock(float(int(time.time())) + 0.5)
    real_time, reader.time = reader.time, clock  # type: ignore[assignment]
    timer = Rounds() if rounds else None
    times: list[str] = []
    try:
        for q in range(queues):
            r.sadd("rq:queues", f"rq:queue:q{q:03d}")
        extra = ["--timing-max-jobs-per-scrape", str(cap)] if cap is not None else []
        on, off = Scraper(url, *extra), Scraper(url, "--no-job-timing")
        on.scrape(), off.scrape()  # the floor
        before = counted(on)
        stamps, rng, serial = Stamps(), random.Random(1), 0
        per_scrape = int(rate * interval)
        rows = []
        for k in range(scrapes):
            write_steady(r, stamps, rng, queues, per_scrape, clock.now, interval, serial)
            serial += per_scrape
            clock.now += interval
            if trace and k == scrapes - 1:
                tracemalloc.start()
            if timer is not None:
                timer.active = True
            cpu = time.process_time()
            wall = on.scrape()
            cpu_on = time.process_time() - cpu
            if timer is not None:
                timer.active = False
                times.append(timer.take())
            peak = tracemalloc.get_traced_memory()[1] / 2**20 if tracemalloc.is_tracing() else None
            tracemalloc.stop()
            cpu = time.process_time()
            off_wall = off.scrape()
            cpu_off = time.process_time() - cpu
            after = counted(on)
            rows.append((wall, cpu_on, off_wall, cpu_off, after[0] - before[0], after[1] - before[1], peak))
            before = after
        print(f"steady: {rate:,} jobs/s, {queues} queues, a scrape every {interval:g} s of a virtual clock; "
              f"cap {cap if cap is not None else 'default'}; load average {os.getloadavg()[0]:.2f}")
        for k, (wall, cpu_on, off_wall, cpu_off, n_counted, n_timed, peak) in enumerate(rows):
            per = (cpu_on - cpu_off) / n_timed * 1e6 if n_timed else float("nan")
            print(f"  scrape {k + 1}: on {wall * 1e3:7.1f} ms ({cpu_on * 1e3:7.1f} CPU), off {off_wall * 1e3:5.1f} ms "
                  f"({cpu_off * 1e3:5.1f} CPU); counted {n_counted:,}, timed {n_timed:,}: {per:.2f} us CPU per timed"
                  f" job" + (f"; traced peak {peak:.1f} MB" if peak is not None else ""))
            if times:
                print(f"    ms: {times[k]}")
    finally:
        reader.time = real_time  # type: ignore[assignment]
        if timer is not None:
            timer.remove()


def counted(scraper: Scraper) -> tuple[int, int]:
    """(finished + failed counted, timed) so far, from the scraper's last body (not a scrape more)."""
    total = timed = 0
    for line in scraper.body.decode().splitlines():
        if line.startswith(("rq_jobs_finished_total{", "rq_jobs_failed_total{")):
            total += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("rq_job_duration_seconds_count{"):
            timed += int(float(line.rsplit(" ", 1)[1]))
    return total, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=100)
    parser.add_argument("--sizes", default="100,5000", help="finished entries per queue (comma-separated)")
    parser.add_argument("--bursts", default="1000,10000", help="jobs ending between two scrapes")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--steady", type=int, metavar="RATE",
                        help="instead: jobs ending at RATE per second, scraped every --interval s (virtual clock)")
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--scrapes", type=int, default=4)
    parser.add_argument("--cap", type=int, help="--timing-max-jobs-per-scrape (default: the setting's)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc's peak in the last scrape (slower)")
    parser.add_argument("--rounds", action="store_true",
                        help="--steady: each round trip's wall and CPU ms, and the ms spent waiting in recv")
    options = parser.parse_args()

    server = RedisServer().start()
    try:
        r = server.client()
        if options.steady:
            steady(server.url, r, options.steady, options.queues, options.interval, options.scrapes, options.cap,
                   options.trace, options.rounds)
            return
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
