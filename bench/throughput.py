"""Throughput: RQ workers finishing N jobs/s over Q queues, scraped with and without job timing.

    .venv/bin/python bench/throughput.py                      # 100, 1,000 and 5,000 jobs/s, 20 queues, 120 s each
    .venv/bin/python bench/throughput.py --rates 1000 --duration 60 --interval 10
    .venv/bin/python bench/throughput.py --smoke [--json F]   # 50 jobs/s, 5 queues, 8 s, a scrape every 2 s
    .venv/bin/python bench/throughput.py --rates 1000 --peer /work/base/.venv/bin/rq-exporter   # side by side

For each rate it starts everything fresh: its own redis-server on a free loopback port (in a
temporary directory, --save '' --appendonly no) and two exporters on free ports, run from the
installed entry point (<repo>/.venv/bin/rq-exporter, or --exporter) as users run it: one with the
default settings (job timing on) and one with --no-job-timing. --peer PATH adds a third: another
install's entry point (an older commit, say) with job timing on, scraped in the same rotation
over the same jobs, so the difference between two versions is measured in one run.

The writer, a subprocess so it takes no GIL from the measuring process, plays RQ 2.x workers
finishing jobs, with the writes RQ's Worker.handle_job_success / handle_job_failure leave behind
(rq/worker/base.py, job.py, registry.py, results.py), each job in one MULTI/EXEC as RQ does:

- success: HSET rq:job:<id> with Job.to_dict(include_result=False)'s fields (status finished,
  origin, created_at, enqueued_at, started_at, ended_at, last_heartbeat in RQ's
  %Y-%m-%dT%H:%M:%S.%fZ UTC format, data = zlib(pickle((func_name, None, (), {}))) with a few
  function names, result_ttl / failure_ttl only when set with --result-ttl / --failure-ttl, as
  RQ writes them only when the job sets them); XADD rq:results:<id> MAXLEN 10 (the Result) and
  EXPIRE it; ZADD rq:finished:<queue> <int(now) + result_ttl> <id> (FinishedJobRegistry.add;
  +inf for -1); EXPIRE rq:job:<id> result_ttl (Job.cleanup). result_ttl is 500 unless set.
- failure (--failure-share of the jobs, spread evenly): HSET with status failed (RQ 2.x keeps
  the traceback in the Result stream, not in the hash: save(include_result=False) leaves
  exc_info out); EXPIRE rq:job:<id> failure_ttl (one year unless set); ZADD rq:failed:<queue>
  <int(now) + failure_ttl> <id> (-1 for -1); XADD rq:results:<id> with exc_string, expired only
  when failure_ttl is set (as Result.create_failure does).
- every --cleanup-interval seconds (60; a worker's maintenance runs every 10 minutes, but with
  many workers the queues get it more often) what clean_registries does per queue: the
  rq:clean_registries:<queue> lock (SET NX EX 899), ZREMRANGEBYSCORE rq:finished:<queue> 0 now
  and rq:failed:<queue> 0 now, DEL the lock. Redis itself expires the job hashes.

It writes the state a worker leaves, not the way there: no rq:wip entries, executions, worker
hashes or queued jobs, and no EXPIRE of the (absent) dependents keys. Queues are registered in
rq:queues; jobs go to the queues in turn, with run times of a few ms to minutes. Writes are
pipelined and paced per 100 ms tick from a fixed schedule, so the rate is even and a slow tick
is caught up; the achieved rate is printed. With the default TTLs nothing expires during a
120 s run (use --result-ttl 60 to see expiry and cleanup at work).

The exporter counts jobs that ended after its first scrape. So the writer runs --warmup seconds
(history), pauses, the first scrape of each exporter happens in a new second (registry scores
are whole seconds) and the writer resumes: every job written after that is one the exporter
must count. Then both exporters are scraped every --interval seconds, one after the other
(which goes first alternates), HTTP GET /metrics timed as wall time; the writer stops after
--duration seconds and one last scrape reads the rest. From the timing-on exporter it reads the
sums of rq_jobs_finished_total + rq_jobs_failed_total (counted), rq_job_duration_seconds_count
(timed) and rq_exporter_jobs_not_timed_total, and rq_exporter_scrape_duration_seconds from both.

Against issue 25's targets, per rate, each met or missed by how much (and in the JSON as
"targets"): every job counted exactly (counted == written) at any rate; at 1,000 jobs/s a scrape
median of at most 100 ms and at most 5 us of exporter CPU per timed job; at 5,000 jobs/s at least
90 % of the counted jobs timed and a peak RSS of at most 100 MB (the timing-on exporter's VmHWM).
Also printed per rate: jobs written after the first scrape, counted, timed (% of counted), not timed,
scrape median / max for timing on and off (HTTP, ms), microseconds per timed job = (median on -
median off) / (timed jobs per scrape), also from the exporters' CPU time, peak RSS (VmHWM) of
each exporter, the median CPU redis-server used while each exporter's scrape ran (the writer's
commands meanwhile included: a few ms), the writer's achieved rate and the load average. The figures go to
bench/results/throughput-<UTC timestamp>.json (--json elsewhere; --smoke writes only with
--json). --check (on with --smoke) exits 1 unless counted == written, timed + not timed ==
counted and the writer kept up. Every wait is bounded and everything started is stopped at the
end, on Ctrl-C or SIGTERM; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if __package__ in (None, ""):  # run by path: devkit and bench.* are at the repository root
    sys.path.insert(0, str(ROOT))

from bench.processes import Exporter, RedisProcess, sleep_until  # noqa: E402
from bench.run import ACCEPT  # noqa: E402
from bench.throughput_report import TABLE_HEADER, print_rate, problems, table_row, target_lines, targets  # noqa: E402
from bench.writer import TICK, WriterProcess  # noqa: E402

SMOKE = {"rates": "50", "queues": 5, "duration": 8.0, "interval": 2.0, "warmup": 1.0}
DEFAULTS = {"rates": "100,1000,5000", "queues": 20, "duration": 120.0, "interval": 15.0, "warmup": 5.0}


def counts(sums: dict[str, float]) -> dict[str, int]:
    return {"counted": int(sums.get("rq_jobs_finished_total", 0) + sums.get("rq_jobs_failed_total", 0)),
            "failed": int(sums.get("rq_jobs_failed_total", 0)),
            "timed": int(sums.get("rq_job_duration_seconds_count", 0)),
            "not_timed": int(sums.get("rq_exporter_jobs_not_timed_total", 0))}


def run_rate(rate: int, opts, command: list[str]) -> dict:
    load_start = os.getloadavg()
    scrapes = max(1, math.ceil(opts.duration / opts.interval - 1e-9))
    result: dict = {"rate": rate, "queues": opts.queues, "failure_share": opts.failure_share,
                    "duration_s": opts.duration, "interval_s": opts.interval, "warmup_s": opts.warmup,
                    "scrapes": scrapes}
    with ExitStack() as stack:
        directory = Path(tempfile.mkdtemp(prefix="rq-throughput-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        server = RedisProcess(opts.redis_server, directory)
        stack.callback(server.stop)
        accept = ACCEPT[opts.accept]
        on = Exporter("timing on", [*command, *opts.exporter_args], server.port, directory / "on.log", accept)
        off = Exporter("timing off", [*command, "--no-job-timing", *opts.exporter_args], server.port,
                       directory / "off.log", accept)
        peer = Exporter("peer", [str(opts.peer), *opts.exporter_args], server.port, directory / "peer.log",
                        accept) if opts.peer else None
        everyone = [on, off, *([peer] if peer else [])]
        for exporter in everyone:
            stack.callback(exporter.stop)
            exporter.start()
        for exporter in everyone:
            exporter.wait_listening(opts.timeout)
        cfg = {"redis_port": server.port, "rate": rate, "queues": opts.queues, "failure_share": opts.failure_share,
               "result_ttl": opts.result_ttl, "failure_ttl": opts.failure_ttl, "seed": opts.seed + rate,
               "cleanup_interval": opts.cleanup_interval, "pause_limit": 60.0,
               "max_seconds": opts.warmup + opts.duration + 120}
        writer = WriterProcess(cfg)
        stack.callback(writer.close)

        # History, then the first scrape in a second no job ended in.
        sleep_until(time.monotonic() + opts.warmup, everyone, writer)
        before = writer.pause()
        time.sleep(math.ceil(time.time()) - time.time() + 0.02)
        on.first_ms, sums = on.scrape(opts.timeout)
        for exporter in everyone[1:]:
            exporter.first_ms, _ = exporter.scrape(opts.timeout)
        writer.resume()
        start = time.monotonic()
        # History is not counted: the first scrape's counters are 0.
        result["first_scrape"] = {"on_ms": round(on.first_ms, 2), "off_ms": round(off.first_ms, 2), **counts(sums)}
        for exporter in everyone:
            exporter.cpu_start = exporter.cpu_seconds()

        detail = []
        stats: dict | None = None
        last: dict[str, int] = {}
        peer_last: dict[str, int] = {}
        for k in range(1, scrapes + 1):
            final = k == scrapes
            sleep_until(start + (opts.duration if final else k * opts.interval), everyone, writer)
            if final:
                stats = writer.stop()
            row: dict = {"t_s": round(time.monotonic() - start, 2)}
            for exporter in everyone[k % len(everyone):] + everyone[:k % len(everyone)]:  # who goes first turns
                if exporter is on:  # what had been written when this scrape began
                    row["written"] = (stats["jobs"] if final else writer.written.value) - before
                redis_cpu = server.cpu_seconds()
                ms, sums = exporter.scrape(opts.timeout)
                exporter.redis_ms.append((server.cpu_seconds() - redis_cpu) * 1e3)
                exporter.http_ms.append(ms)
                own = sums.get("rq_exporter_scrape_duration_seconds", float("nan")) * 1e3
                exporter.own_ms.append(own)
                key = "on" if exporter is on else "off" if exporter is off else "peer"
                row[f"{key}_ms"], row[f"{key}_own_ms"] = round(ms, 2), round(own, 2)
                if exporter is on:
                    last = counts(sums)
                    row.update(last)
                elif exporter is peer:
                    peer_last = counts(sums)
            detail.append(row)
        assert stats is not None
        for exporter in everyone:
            exporter.cpu_end = exporter.cpu_seconds()
        peak = {exporter.name: round(exporter.peak_rss_mb(), 1) for exporter in everyone}
        memory = server.client.info("memory")
        result["redis"] = {"used_memory_mb": round(memory["used_memory"] / 2**20, 1), "keys": server.client.dbsize(),
                           "cpu_source": server.meter.source if server.meter else None}

    written = stats["jobs"] - before
    timed_per_scrape = last["timed"] / scrapes
    exporters = []
    for exporter in everyone:
        exporters.append({
            "name": exporter.name, "args": " ".join(exporter.command[1:]),
            "median_ms": round(statistics.median(exporter.http_ms), 2), "max_ms": round(max(exporter.http_ms), 2),
            "own_median_ms": round(statistics.median(exporter.own_ms), 2),
            "cpu_ms": round((exporter.cpu_end - exporter.cpu_start) / scrapes * 1e3, 1),
            "cpu_source": exporter.meter.source if exporter.meter else None,
            "redis_cpu_ms": round(statistics.median(exporter.redis_ms), 1),
            "first_ms": round(exporter.first_ms, 2), "samples": exporter.samples, "peak_rss_mb": peak[exporter.name],
        })
    e_on, e_off = exporters[:2]
    if peer is not None:
        # This exporter against the peer, both timing every job: what the difference costs per
        # newly failed job (the failed jobs are the ones whose tracebacks issue 10 reads).
        e_peer = exporters[2]
        failed_per_scrape = last["failed"] / scrapes
        result["peer"] = {
            "exporter": str(opts.peer), "counted": peer_last.get("counted"), "failed_per_scrape": failed_per_scrape,
            "median_ms_difference": round(e_on["median_ms"] - e_peer["median_ms"], 2),
            "cpu_ms_difference": round(e_on["cpu_ms"] - e_peer["cpu_ms"], 1),
            "us_per_failed_job": round((e_on["median_ms"] - e_peer["median_ms"]) * 1e3 / failed_per_scrape, 2)
            if failed_per_scrape else None,
            "us_per_failed_job_cpu": round((e_on["cpu_ms"] - e_peer["cpu_ms"]) * 1e3 / failed_per_scrape, 2)
            if failed_per_scrape else None,
            # The same work on the same machine in the same run: steadier than either CPU figure, which
            # move together with the VM's speed (docs/benchmarks.md, sessions 11 and 12).
            "cpu_ratio": round(e_on["cpu_ms"] / e_peer["cpu_ms"], 3) if e_peer["cpu_ms"] else None,
            "median_ratio": round(e_on["median_ms"] / e_peer["median_ms"], 3) if e_peer["median_ms"] else None,
        }
    result.update({
        "writer": {**stats, "before_first_scrape": before, "after_first_scrape": written},
        "written": written, **last,
        "timed_share": round(last["timed"] / last["counted"], 4) if last["counted"] else None,
        "consistent": all(r["timed"] + r["not_timed"] == r["counted"] for r in detail),
        "timed_per_scrape": round(timed_per_scrape, 1),
        "us_per_timed_job": round((e_on["median_ms"] - e_off["median_ms"]) * 1e3 / timed_per_scrape, 2)
        if timed_per_scrape else None,
        "us_per_timed_job_cpu": round((e_on["cpu_ms"] - e_off["cpu_ms"]) * 1e3 / timed_per_scrape, 2)
        if timed_per_scrape else None,
        # Past the per-scrape cap the difference also pays for the jobs counted by score alone.
        "us_per_counted_job": round((e_on["median_ms"] - e_off["median_ms"]) * 1e3 / (last["counted"] / scrapes), 2)
        if last["counted"] else None,
        "exporters": exporters,
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "scrapes_detail": detail,
    })
    result["targets"] = targets(result)
    return result


def machine(redis_server: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    version = subprocess.run([redis_server, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            // 2**20, "python": sys.version.split()[0], "redis": version[2] if len(version) > 2 else "?",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def versions(exporter: Path) -> dict:
    """Package versions in the exporter's environment, and the repository's commit."""
    found: dict = {}
    python = exporter.parent / "python"
    if python.exists():
        code = ("import importlib.metadata as m, json\nout = {}\n"
                "for d in ('rq-exporter-ng', 'rq', 'redis', 'hiredis', 'prometheus-client'):\n"
                "    try: out[d] = m.version(d)\n    except m.PackageNotFoundError: out[d] = None\n"
                "print(json.dumps(out))")
        try:
            done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=30)
            found.update(json.loads(done.stdout))
        except (subprocess.SubprocessError, ValueError):
            pass
    try:
        found["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                         text=True, timeout=10).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "rq_exporter_ng"],
                                 capture_output=True, text=True, timeout=10).stdout.splitlines()
        found["rq_exporter_uncommitted"] = [line[3:] for line in changed]
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", help=f"jobs per second, comma-separated ({DEFAULTS['rates']})")
    parser.add_argument("--queues", type=int, help=f"queues the jobs go to in turn ({DEFAULTS['queues']})")
    parser.add_argument("--duration", type=float, help=f"seconds of jobs per rate ({DEFAULTS['duration']:g})")
    parser.add_argument("--interval", type=float, help=f"seconds between scrapes ({DEFAULTS['interval']:g})")
    parser.add_argument("--warmup", type=float,
                        help=f"seconds of history before the first scrape ({DEFAULTS['warmup']:g})")
    parser.add_argument("--failure-share", type=float, default=0.05, help="share of the jobs that fail (0.05)")
    parser.add_argument("--result-ttl", type=int, help="the jobs' result_ttl (default: not set, RQ's 500 s)")
    parser.add_argument("--failure-ttl", type=int, help="the jobs' failure_ttl (default: not set, RQ's one year)")
    parser.add_argument("--cleanup-interval", type=float, default=60.0,
                        help="seconds between the writer's clean_registries of every queue (60)")
    parser.add_argument("--smoke", action="store_true",
                        help="toy size: " + ", ".join(f"--{k} {v}" for k, v in SMOKE.items()) + "; implies --check")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless counted == written, timed + not timed == counted and the writer kept up")
    parser.add_argument("--exporter", type=Path, default=ROOT / ".venv" / "bin" / "rq-exporter",
                        help="the exporter's installed entry point (<repo>/.venv/bin/rq-exporter)")
    parser.add_argument("--peer", type=Path,
                        help="a third exporter, another install's entry point (e.g. a frozen main), timing on")
    parser.add_argument("--exporter-args", default="",
                        help="extra flags for both exporters, e.g. '--timing-max-jobs-per-scrape 50000'")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument("--accept", choices=sorted(ACCEPT), default="prometheus3",
                        help="Accept header of the scrapes: Prometheus 3's (OpenMetrics) or plain text")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per scrape or start-up")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path,
                        help="write the figures here (default bench/results/throughput-<UTC>.json; none with --smoke)")
    opts = parser.parse_args()
    for name, value in (SMOKE if opts.smoke else DEFAULTS).items():
        if getattr(opts, name) is None:
            setattr(opts, name, value)
    opts.check = opts.check or opts.smoke
    opts.exporter_args = opts.exporter_args.split()
    rates = [int(r) for r in opts.rates.split(",") if r.strip()]
    if not (rates and all(r > 0 for r in rates) and opts.queues > 0 and opts.duration > 0 and opts.interval > 0
            and 0 <= opts.failure_share <= 1 and opts.warmup >= 0):
        parser.error("rates, queues, duration and interval must be > 0, failure share within 0..1")
    if 0 in (opts.result_ttl, opts.failure_ttl):
        parser.error("a TTL of 0 keeps no registry entry: nothing to count")
    if not opts.exporter.exists():
        print(f"throughput: {opts.exporter} is missing (make test, or scripts/venv.sh .venv 'rq>=2,<3')",
              file=sys.stderr)
        return 2
    if opts.peer is not None and not opts.peer.exists():
        print(f"throughput: --peer {opts.peer} is missing", file=sys.stderr)
        return 2
    if not Path(opts.redis_server).exists():
        print(f"throughput: redis-server not found ({opts.redis_server})", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    command = [str(opts.exporter)]
    began = time.monotonic()
    load_start = os.getloadavg()
    document = {
        "machine": machine(opts.redis_server), "versions": versions(opts.exporter),
        "settings": {"rates": rates, "queues": opts.queues, "duration_s": opts.duration, "interval_s": opts.interval,
                     "warmup_s": opts.warmup, "failure_share": opts.failure_share, "result_ttl": opts.result_ttl,
                     "failure_ttl": opts.failure_ttl, "cleanup_interval_s": opts.cleanup_interval,
                     "exporter": str(opts.exporter), "peer": str(opts.peer) if opts.peer else None,
                     "exporter_args": " ".join(opts.exporter_args),
                     "accept": opts.accept, "seed": opts.seed, "tick_s": TICK},
        "command": " ".join(sys.argv),
        "results": [],
    }
    print(f"throughput: rates {', '.join(f'{r:,}' for r in rates)} jobs/s, {opts.queues} queues, "
          f"{opts.duration:g} s each, a scrape every {opts.interval:g} s; load average {load_start[0]:.2f}", flush=True)
    error = None
    try:
        for rate in rates:
            result = run_rate(rate, opts, command)
            document["results"].append(result)
            print_rate(result)
            sys.stdout.flush()
    except KeyboardInterrupt:
        error = "interrupted"
        print("\nthroughput: interrupted; everything it started is stopped", file=sys.stderr)
    except Exception as exc:  # reported, and the figures so far are kept
        error = f"{type(exc).__name__}: {exc}"
        print(f"\nthroughput: {error}", file=sys.stderr)
    load_end = os.getloadavg()
    document["load_average"] = {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in load_end]}
    document["wall_seconds"] = round(time.monotonic() - began, 1)
    if error:
        document["error"] = error
    if document["results"]:
        print(f"\n{TABLE_HEADER}\n" + "\n".join(table_row(r) for r in document["results"]))
        print("\nAgainst the targets (issue 25):")
        for r in document["results"]:
            for line in target_lines(r):
                print(f"  {line}")
    print(f"\nload average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; "
          f"{document['wall_seconds']:g} s in all")
    path = opts.json
    if path is None and not opts.smoke and document["results"]:
        path = BENCH / "results" / f"throughput-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=1) + "\n")
        print(f"figures in {path}")
    if error:
        return 130 if error == "interrupted" else 1
    found = [p for r in document["results"] for p in problems(r)]
    for p in found:
        print(f"throughput: {p}", file=sys.stderr if opts.check else sys.stdout)
    return 1 if opts.check and found else 0


if __name__ == "__main__":
    sys.exit(main())
