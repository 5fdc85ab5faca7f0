"""Side-by-side scrape benchmark: this exporter against rq-exporter 3.1.0 on the same Redis.

    .venv/bin/python bench/run.py                          # 1000 queues, 200 workers, 1M jobs
    .venv/bin/python bench/run.py --delay-ms 0.5           # + a proxy adding 0.5 ms each way
    .venv/bin/python bench/run.py --scaling                # scrape time at 10..10,000 queues
    .venv/bin/python bench/run.py --queues 10000 --workers 2000 --jobs 200000 --idle-share 0.9   # most queues idle
    .venv/bin/python bench/run.py --queues 3 --workers 2 --jobs 50 --no-peer   # a smoke run
    .venv/bin/python bench/run.py --no-peer --baseline /work/base/.venv/bin/rq-exporter   # against another install

It starts its own redis-server on a free loopback port, fills it (bench/dataset.py), installs
rq-exporter==3.1.0 into bench/.venv-peer on first use, starts both exporters against that
Redis (through bench/proxy.py when --delay-ms is set) and scrapes them in turn; with
``--baseline`` another build of this exporter (its ``rq-exporter`` command, same flags) runs
alongside, so that a change is measured against the code before it in the same run. For each
exporter it prints the median and p90 of the HTTP GET /metrics time, the Redis commands and
Redis server time per scrape (INFO commandstats deltas: the commands' own work) and Redis'
CPU per scrape (its threads' run time: reading commands and writing replies too), write commands, round trips (counted
by the proxy), the peak RSS, and the ratio to rq-exporter. Everything it starts is stopped at
the end; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import gzip
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:  # run by path (python bench/run.py): devkit and bench.* are at the repository root
    sys.path.insert(0, str(ROOT))

from bench.dataset import Size, fill, share  # noqa: E402
from bench.proxy import DelayProxy, measured_round_trip  # noqa: E402
from bench.report import ROWS_HEADER, rows_of  # noqa: E402
from bench.schedules import fill_schedules  # noqa: E402
from devkit import CpuMeter, Metered, RedisServer, free_port, precompile, wait_for  # noqa: E402

PEER = "rq-exporter==3.1.0"
# Accept headers of a scrape: what Prometheus 3.x sends (OpenMetrics preferred), or plain text.
ACCEPT = {
    "prometheus3": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                   "application/openmetrics-text;version=0.0.1;q=0.4,"
                   "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "text": "text/plain;version=0.0.4",
}
PEER_VENV = BENCH / ".venv-peer"
# The last, issue 25's: 10,000 queues, 2,000 workers, 20 jobs a queue.
SCALING = ((10, 20, 10_000), (100, 200, 100_000), (1000, 200, 10_000), (1000, 200, 1_000_000),
           (5000, 200, 1_000_000), (10_000, 2000, 200_000))


def peer_command() -> list[str]:
    binary = PEER_VENV / "bin" / "rq-exporter"
    if not binary.exists():
        print(f"installing {PEER} into {PEER_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", PEER], check=True)
    return [str(binary)]


@dataclass
class Exporter(Metered):
    name: str
    command: list[str]
    redis_port: int
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    proxy: DelayProxy | None = None
    times: list[float] = field(default_factory=list)
    commands: list[int] = field(default_factory=list)
    usec: list[int] = field(default_factory=list)
    redis_cpu: list[float] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    accept: str = ACCEPT["prometheus3"]
    gzip: bool = False  # ask for a gzipped body, as Prometheus does
    samples: int = 0
    cpu: float = 0.0
    first_writes: int = 0
    content_type: str = ""
    meter: CpuMeter | None = None  # made at the first cpu_seconds()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self, startup_timeout: float) -> None:
        precompile(self.command[0])
        target = f"redis://127.0.0.1:{self.redis_port}/0"
        self.process = subprocess.Popen(
            [*self.command, "--host", "127.0.0.1", "--port", str(self.port), "--redis-url", target],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)

        def serving() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(serving, startup_timeout, what=f"{self.name} to listen")

    def scrape(self, timeout: float) -> bytes:
        headers = {"Accept": self.accept, **({"Accept-Encoding": "gzip"} if self.gzip else {})}
        request = urllib.request.Request(self.url, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {response.status}")
            body = response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return body, response.headers.get("Content-Type", "")


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    return {key[len("cmdstat_"):]: (int(v["calls"]), int(v["usec"]))
            for key, v in client.info("commandstats").items()}


def is_write(client: redis.Redis, command: str, cache: dict[str, bool]) -> bool:
    if command not in cache:
        # Subcommands (client|setinfo) are judged by their container: none of those writes data.
        top = command.partition("|")[0]
        info = client.execute_command("COMMAND", "INFO", top).get(top) or {}
        cache[command] = "write" in info.get("flags", [])
    return cache[command]


def stats_delta(before: dict, after: dict) -> dict[str, tuple[int, int]]:
    """Calls and microseconds per command between two commandstats readings. The INFO that took
    ``before`` is counted in ``after`` (the one taking ``after`` is not yet): one INFO call, and
    every INFO's time, left out, so that an exporter's own INFO (the Redis under RQ) still counts."""
    delta = {name: (calls - before.get(name, (0, 0))[0], usec - before.get(name, (0, 0))[1])
             for name, (calls, usec) in after.items()}
    if "info" in delta:
        delta["info"] = (delta["info"][0] - 1, 0)
    return delta


def writes(client: redis.Redis, delta: dict, write_cache: dict) -> int:
    return sum(c for name, (c, _) in delta.items() if c and is_write(client, name, write_cache))


def on_cpu_seconds(pid: int) -> float:
    """The time a process' threads have run, to the nanosecond (/proc/PID/task/*/schedstat). For
    redis-server, whose threads live as long as it does; moving it into a cgroup as CpuMeter does
    made its commands ~60 % slower here (commandstats time 118 -> 190 ms a scrape at 10,000 queues)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        with contextlib.suppress(OSError), open(path) as f:
            total += int(f.read().split()[0])
    return total / 1e9


def measure(exporter: Exporter, client: redis.Redis, timeout: float, write_cache: dict, redis_pid: int,
            ) -> None:
    """One scrape, with what it cost Redis: the commands' own time (the benchmark's own INFO calls
    left out), and the server's CPU, which also reads the commands and writes the replies (two
    INFO commandstats of the benchmark's in it, ~0.1 ms)."""
    before = commandstats(client)
    bursts = exporter.proxy.bursts if exporter.proxy else 0
    redis_before = on_cpu_seconds(redis_pid)
    start = time.perf_counter()
    body, content_type = exporter.scrape(timeout)
    exporter.times.append(time.perf_counter() - start)
    exporter.redis_cpu.append(on_cpu_seconds(redis_pid) - redis_before)
    delta = stats_delta(before, commandstats(client))
    exporter.commands.append(sum(c for c, _ in delta.values()))
    exporter.usec.append(sum(u for _, u in delta.values()))
    exporter.writes.append(writes(client, delta, write_cache))
    if exporter.proxy:
        exporter.round_trips.append(exporter.proxy.bursts - bursts)
    exporter.samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    exporter.content_type = content_type


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def run(size: Size, scrapes: int, delay_ms: float, with_peer: bool, timeout: float,
        budget: float, ours_args: list[str], accept: str = "prometheus3", also: Sequence[Path] = (),
        schedules: int = 0, use_gzip: bool = False) -> dict:
    """Fill a fresh Redis, scrape both exporters in turn; returns the figures."""
    result: dict = {"queues": size.queues, "workers": size.workers, "jobs": size.jobs, "delay_ms": delay_ms,
                    "ours_args": " ".join(ours_args), "accept": accept, "gzip": use_gzip,
                    "idle_share": size.idle_share}
    with ExitStack() as stack:
        server = stack.enter_context(RedisServer())
        redis_port, client = server.port, server.client(socket_timeout=60)
        stack.callback(client.close)
        redis_pid = int(client.info("server")["process_id"])
        result["fill"] = fill("127.0.0.1", redis_port, size)
        # Every exporter starts after the fill's second. One started within it takes that second as
        # its floor, so the fill's ~30 % of finished jobs that ended "now" stay in its windows'
        # overlap (slack + tolerance) and are read again each scrape for 12 s; one started later
        # never sees them. Without this, whichever exporter runs first paid 1.4 ms of Redis a scrape
        # more at 10 queues (docs/benchmarks.md, session 9).
        now = time.time()  # one reading: two could straddle the second and ask for a negative sleep
        time.sleep(math.floor(now) + 1 - now)
        if schedules:
            result["schedules"] = fill_schedules(client, schedules)
        exporters = [Exporter("rq_exporter (ours)", [sys.executable, "-m", "rq_exporter_ng", *ours_args], redis_port)]
        if with_peer:
            exporters.append(Exporter("rq-exporter 3.1.0", peer_command(), redis_port))
        for path in also:  # other installs of this exporter (an older commit), same flags
            exporters.append(Exporter(f"also {Path(path).parent.parent.parent.name}", [str(path), *ours_args],
                                      redis_port))
        write_cache: dict[str, bool] = {}
        for exporter in exporters:
            exporter.accept, exporter.gzip = ACCEPT[accept], use_gzip
            if delay_ms > 0:
                exporter.proxy = stack.enter_context(DelayProxy(redis_port, delay_ms / 1000))
                exporter.redis_port = exporter.proxy.port
            stack.callback(exporter.stop)
            # Start-up and a warm-up scrape (connections, imports, first-call caches); rq-exporter
            # already collects once when it starts. Their writes are counted apart.
            before = commandstats(client)
            exporter.start(startup_timeout=timeout)
            exporter.scrape(timeout)
            exporter.first_writes = writes(client, stats_delta(before, commandstats(client)), write_cache)
        if delay_ms > 0:
            direct = measured_round_trip(redis_port)
            result["added_rtt_ms"] = round((measured_round_trip(exporters[0].proxy.port) - direct) * 1e3, 3)
        deadline = time.monotonic() + budget
        cpu_before = [exporter.cpu_seconds() for exporter in exporters]
        for i in range(scrapes):
            if i >= 3 and time.monotonic() > deadline:
                break  # bounded in time: at least 3 scrapes each, then stop at the budget
            for exporter in exporters:
                measure(exporter, client, timeout, write_cache, redis_pid)
        for exporter, before in zip(exporters, cpu_before):
            exporter.cpu = exporter.cpu_seconds() - before
        result["exporters"] = [summary(e) for e in exporters]
        result["load_average"] = round(os.getloadavg()[0], 2)  # other work on the machine during the run
    if with_peer:
        ours, peer = result["exporters"][:2]
        ours["speedup"] = round(peer["median_ms"] / ours["median_ms"], 1)
    return result


def summary(e: Exporter) -> dict:
    return {
        "name": e.name,
        "scrapes": len(e.times),
        "median_ms": round(statistics.median(e.times) * 1e3, 2),
        "p90_ms": round(percentile(e.times, 0.9) * 1e3, 2),
        "cpu_ms": round(e.cpu / len(e.times) * 1e3, 1),
        "cpu_source": e.meter.source if e.meter else None,
        "commands": int(statistics.median(e.commands)),
        "redis_usec": int(statistics.median(e.usec)),
        "redis_cpu_ms": round(statistics.median(e.redis_cpu) * 1e3, 1),
        "writes": int(statistics.median(e.writes)),
        "startup_writes": e.first_writes,
        "round_trips": int(statistics.median(e.round_trips)) if e.round_trips else None,
        "samples": e.samples,
        "content_type": e.content_type,
        "peak_rss_mb": round(e.peak_rss_mb(), 1),
    }


def print_run(result: dict) -> None:
    delay = f", proxy +{result['delay_ms']} ms each way (measured added RTT {result.get('added_rtt_ms')} ms)" \
        if result["delay_ms"] else ", loopback"
    flags = f", ours with {result['ours_args']}" if result["ours_args"] else ""
    flags += f", Accept: {result['accept']}"
    if result.get("schedules"):
        flags += f", schedules {result['schedules']}"
    if result.get("idle_share"):
        flags += f", {result['idle_share']:.0%} of queues idle"
    print(f"\n{result['queues']} queues, {result['workers']} workers, {result['jobs']} jobs{delay}{flags}"
          f" (fill {result['fill']['seconds']} s, load average {result.get('load_average')})")
    head = f"{'exporter':<20} {'scrapes':>7} {'median ms':>10} {'p90 ms':>9} {'cpu ms':>7} {'commands':>9} " \
           f"{'redis us':>9} {'redis ms':>8} {'writes':>6} {'start w':>7} {'RTs':>6} {'samples':>8} " \
           f"{'RSS MB':>7} {'speedup':>8}"
    print(head)
    for e in result["exporters"]:
        rts = "-" if e["round_trips"] is None else e["round_trips"]
        print(f"{e['name']:<20} {e['scrapes']:>7} {e['median_ms']:>10} {e['p90_ms']:>9} {e['cpu_ms']:>7} "
              f"{e['commands']:>9} {e['redis_usec']:>9} {e.get('redis_cpu_ms', '-'):>8} {e['writes']:>6} "
              f"{e['startup_writes']:>7} {rts:>6} "
              f"{e['samples']:>8} {e['peak_rss_mb']:>7} {e.get('speedup', '-'):>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Scrape benchmark: rq_exporter vs rq-exporter 3.1.0")
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--dead-workers", type=int, default=0,
                        help="workers listed in rq:workers without a hash (rq-exporter removes them: writes)")
    parser.add_argument("--idle-share", type=share, default=0.0,
                        help="share of queues that are idle: only queued and failed jobs (bench/dataset.py)")
    parser.add_argument("--scrapes", type=int, default=20, help="scrapes per exporter (at most)")
    parser.add_argument("--budget", type=float, default=120, help="seconds of scraping per run, after 3 scrapes")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="proxy delay per direction (0: direct)")
    parser.add_argument("--no-peer", action="store_true", help="only this exporter")
    parser.add_argument("--scaling", action="store_true", help="the scaling table instead of one run")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per scrape or startup")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--accept", choices=sorted(ACCEPT), default="prometheus3",
                        help="Accept header of the scrapes: Prometheus 3's (OpenMetrics) or plain text")
    parser.add_argument("--gzip", action="store_true", help="ask for gzipped bodies (Prometheus does)")
    parser.add_argument("--ours-args", default="", help="extra flags for our exporter, e.g. '--no-job-timing'")
    parser.add_argument("--also", "--baseline", dest="also", action="append", default=[], type=Path,
                        help="another install's rq-exporter entry point, scraped in turn with the same flags "
                        "(repeatable)")
    parser.add_argument("--schedules", type=int, default=0, metavar="N",
                        help="also N rq-scheduler jobs and an rq cron scheduler (bench/schedules.py)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("bench: redis-server is not installed (scripts/system-deps.sh)", file=sys.stderr)
        return 2
    results = []
    sizes = [Size(q, w, j, idle_share=args.idle_share) for q, w, j in SCALING] if args.scaling else \
        [Size(args.queues, args.workers, args.jobs, dead_workers=args.dead_workers, idle_share=args.idle_share)]
    for size in sizes:
        result = run(size, args.scrapes, args.delay_ms, not args.no_peer, args.timeout, args.budget,
                     args.ours_args.split(), args.accept, args.also, args.schedules, use_gzip=args.gzip)
        print_run(result)
        results.append(result)
    if args.scaling:
        print("\nscaling (loopback):\n" + "\n".join([ROWS_HEADER, *rows_of("this run", results)]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1) + "\n")
    return 0


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    return {"cpu": cpu, "cores": os.cpu_count(), "python": sys.version.split()[0], "redis": redis_version,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


if __name__ == "__main__":
    sys.exit(main())
