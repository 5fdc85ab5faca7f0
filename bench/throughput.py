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
import base64
import ctypes
import json
import math
import multiprocessing
import os
import pickle
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zlib
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import hiredis
import redis
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if __package__ in (None, ""):  # run by path: devkit and bench.* are at the repository root
    sys.path.insert(0, str(ROOT))

from bench.run import ACCEPT  # noqa: E402
from devkit import CpuMeter, free_port, precompile, proc_status, stop_process, wait_for  # noqa: E402

TICK = 0.1  # seconds of jobs per pipeline
RQ_RESULT_TTL = 500  # rq.defaults.DEFAULT_RESULT_TTL
RQ_FAILURE_TTL = 31_536_000  # rq.defaults.DEFAULT_FAILURE_TTL
RQ_TIMEOUT = b"180"  # Queue.DEFAULT_TIMEOUT, stored as the job's timeout
# Function names and how often each runs (of 10).
FUNCS = (("app.tasks.send_email", 4), ("app.tasks.resize_image", 3), ("app.reports.build_report", 2),
         ("app.billing.charge_card", 1))
EXC = ("Traceback (most recent call last):\n  File \"/app/app/billing.py\", line 42, in charge_card\n"
       "    raise PaymentDeclined(card)\napp.billing.PaymentDeclined: card declined: %s\n")  # % the job id:
# every traceback differs, so the exporter's cache of identical ones never helps (the worst case)
WORKERS = 16  # worker names the jobs are spread over
SMOKE = {"rates": "50", "queues": 5, "duration": 8.0, "interval": 2.0, "warmup": 1.0}
DEFAULTS = {"rates": "100,1000,5000", "queues": 20, "duration": 120.0, "interval": 15.0, "warmup": 5.0}

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """In a child: SIGTERM when the benchmark process dies, even by SIGKILL (Linux)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# -- the writer (a subprocess) -------------------------------------------------------------------

def resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


MULTI = resp(b"MULTI")
EXEC = resp(b"EXEC")


class Stamps:
    """rq.utils.utcformat of an epoch time, the seconds part cached."""

    def __init__(self) -> None:
        self.seconds: dict[int, bytes] = {}

    def __call__(self, when: float) -> bytes:
        whole = int(when)
        text = self.seconds.get(whole)
        if text is None:
            if len(self.seconds) > 50_000:
                self.seconds.clear()
            text = self.seconds[whole] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
        return text + b".%06dZ" % int((when - whole) * 1e6)


class Writer:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg["seed"])
        self.sock = socket.create_connection(("127.0.0.1", cfg["redis_port"]), timeout=30)
        self.reader = hiredis.Reader()
        self.stamp = Stamps()
        self.queues = [f"q{i:03d}".encode() for i in range(cfg["queues"])]
        self.workers = [f"bench-worker-{i:02d}".encode() for i in range(WORKERS)]
        self.funcs = []
        for name, weight in FUNCS:
            data = zlib.compress(pickle.dumps((name, None, (), {}), protocol=pickle.HIGHEST_PROTOCOL))
            self.funcs += [(data, f"{name}()".encode())] * weight
        self.result_ttl = cfg["result_ttl"]  # None: not set on the job
        self.failure_ttl = cfg["failure_ttl"]
        self.ttl_fields: list[bytes] = []
        if self.result_ttl is not None:
            self.ttl_fields += [b"result_ttl", b"%d" % self.result_ttl]
        if self.failure_ttl is not None:
            self.ttl_fields += [b"failure_ttl", b"%d" % self.failure_ttl]
        self.jobs = 0
        self.failed = 0
        self.commands = 0
        register = [resp(b"SADD", b"rq:queues", b"rq:queue:" + q) for q in self.queues]
        self.flush(register, len(register))

    def flush(self, commands: list[bytes], expected: int) -> list:
        self.sock.sendall(b"".join(commands))
        self.commands += expected
        replies: list = []
        while len(replies) < expected:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.reader.feed(chunk)
            while (reply := self.reader.gets()) is not False:
                replies.append(reply)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError) or (
                    isinstance(reply, list) and any(isinstance(r, hiredis.ReplyError) for r in reply)):
                raise RuntimeError(f"redis refused a write: {reply!r}")
        return replies

    def job(self, out: list[bytes], now: float) -> None:
        """The writes of one job that just ended, as RQ 2.x's worker makes them."""
        i = self.jobs
        rng = self.rng
        share = self.cfg["failure_share"]
        failed = math.floor((i + 1) * share) > math.floor(i * share)
        queue = self.queues[i % len(self.queues)]
        data, description = self.funcs[rng.randrange(len(self.funcs))]
        jid = str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode()
        ended = now - rng.random() * 0.005  # the worker stores the job a few ms after it ended
        started = ended - min(rng.lognormvariate(-1.6, 1.3), 1800.0)  # median 0.2 s
        enqueued = started - rng.expovariate(2.0)  # waited 0.5 s on average
        worker = self.workers[i % WORKERS]
        stamp = self.stamp
        fields = [
            b"created_at", stamp(enqueued - 0.0003), b"data", data, b"success_callback_name", b"",
            b"failure_callback_name", b"", b"stopped_callback_name", b"", b"started_at", stamp(started),
            b"ended_at", stamp(ended), b"last_heartbeat", stamp(ended), b"worker_name", worker, b"group_id", b"",
            b"origin", queue, b"description", description, b"enqueued_at", stamp(enqueued), b"timeout", RQ_TIMEOUT,
            *self.ttl_fields, b"status", b"failed" if failed else b"finished",
        ]
        key = b"rq:job:" + jid
        results = b"rq:results:" + jid
        execution = [b"execution_id", b"%032x" % rng.getrandbits(128), b"execution_started_at", repr(started).encode(),
                     b"execution_ended_at", repr(ended).encode()]
        out.append(MULTI)
        out.append(resp(b"HSET", key, *fields))
        second = int(now)  # rq.utils.current_timestamp()
        if not failed:
            ttl = RQ_RESULT_TTL if self.result_ttl is None else self.result_ttl
            out.append(resp(b"XADD", results, b"MAXLEN", b"10", b"*", b"type", b"1", b"worker_name", worker,
                            *execution))
            out.append(resp(b"PERSIST", results) if ttl == -1 else resp(b"EXPIRE", results, b"%d" % ttl))
            score = b"+inf" if ttl < 0 else b"%d" % (second + ttl)
            out.append(resp(b"ZADD", b"rq:finished:" + queue, score, jid))
            if ttl > 0:
                out.append(resp(b"EXPIRE", key, b"%d" % ttl))
        else:
            ttl = RQ_FAILURE_TTL if self.failure_ttl is None else self.failure_ttl
            if ttl > 0:
                out.append(resp(b"EXPIRE", key, b"%d" % ttl))
            score = b"%d" % ttl if ttl < 0 else b"%d" % (second + ttl)
            out.append(resp(b"ZADD", b"rq:failed:" + queue, score, jid))
            out.append(resp(b"XADD", results, b"MAXLEN", b"10", b"*", b"type", b"2", b"worker_name", worker,
                            b"exc_string", base64.b64encode(zlib.compress(EXC.encode() % jid)), *execution))
            if self.failure_ttl is not None:
                out.append(resp(b"PERSIST", results) if self.failure_ttl == -1
                           else resp(b"EXPIRE", results, b"%d" % self.failure_ttl))
            self.failed += 1
        out.append(EXEC)
        self.jobs += 1

    def clean_registries(self) -> int:
        """rq.registry.clean_registries for every queue (the finished and failed parts); entries removed."""
        now = b"%d" % int(time.time())
        commands = []
        for q in self.queues:
            lock = b"rq:clean_registries:" + q
            commands += [resp(b"SET", lock, b"1", b"NX", b"EX", b"899"),
                         resp(b"ZREMRANGEBYSCORE", b"rq:finished:" + q, b"0", now),
                         resp(b"ZREMRANGEBYSCORE", b"rq:failed:" + q, b"0", now), resp(b"DEL", lock)]
        replies = self.flush(commands, len(commands))
        return sum(r for k, r in enumerate(replies) if k % 4 in (1, 2))


def writer_main(conn, written, cfg: dict) -> None:
    """Jobs at cfg['rate'] per second until told to stop (or its time limit, or the parent's end)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    writer = Writer(cfg)
    rate = cfg["rate"]
    conn.send(("ready",))
    hard_deadline = time.monotonic() + cfg["max_seconds"]
    base = time.monotonic()  # the schedule's start, moved on by pauses
    tick = 0
    slowest = 0.0
    durations: list[float] = []  # bounded by the time limit: at most max_seconds / TICK ticks
    late = 0
    behind = 0
    cleanups = removed = 0
    next_cleanup = time.monotonic() + cfg["cleanup_interval"]
    reason = "time limit"
    while time.monotonic() < hard_deadline:
        if os.getppid() != parent:
            reason = "parent gone"
            break
        due = base + tick * TICK
        wait = due - time.monotonic()
        if conn.poll(max(0.0, min(wait, TICK))):
            message = conn.recv()
            if message == "pause":
                paused = time.monotonic()
                conn.send(("paused", writer.jobs))
                if not conn.poll(cfg["pause_limit"]):
                    reason = "pause without resume"
                    break
                message = conn.recv()
                base += time.monotonic() - paused
            if message == "stop":
                reason = "stopped"
                break
            continue
        if time.monotonic() < due:
            continue
        start = time.monotonic()
        count = math.floor(rate * (tick + 1) * TICK) - math.floor(rate * tick * TICK)
        commands: list[bytes] = []
        now = time.time()
        for _ in range(count):
            writer.job(commands, now)
        writer.flush(commands, len(commands))
        written.value = writer.jobs
        tick += 1
        end = time.monotonic()
        slowest = max(slowest, end - start)
        durations.append(end - start)
        late += end > base + tick * TICK  # the next tick was due before this one was written
        behind = max(behind, math.floor(rate * (end - base)) - writer.jobs)
        if end >= next_cleanup:
            removed += writer.clean_registries()
            cleanups += 1
            next_cleanup = end + cfg["cleanup_interval"]
    # Each tick is TICK seconds of jobs: a writer that keeps up has written `tick` of them in
    # about tick * TICK seconds; one that falls behind took longer.
    active = max(time.monotonic() - base, tick * TICK)
    conn.send(("stopped", {
        "reason": reason, "jobs": writer.jobs, "failed": writer.failed, "commands": writer.commands,
        "active_seconds": round(active, 2), "achieved_rate": round(writer.jobs / active, 1) if active > 0 else 0.0,
        "ticks": tick, "median_tick_ms": round(statistics.median(durations) * 1e3, 1) if durations else None,
        "slowest_tick_ms": round(slowest * 1e3, 1), "late_ticks": late, "max_behind_jobs": behind,
        "cleanups": cleanups, "cleanup_removed": removed,
    }))


class WriterProcess:
    def __init__(self, cfg: dict) -> None:
        context = multiprocessing.get_context("fork")  # nothing threaded runs in this process yet
        self.conn, child = context.Pipe()
        self.written = context.Value("q", 0, lock=False)
        self.process = context.Process(target=writer_main, args=(child, self.written, cfg), daemon=True)
        self.process.start()
        child.close()
        self.stats: dict | None = None
        self.expect("ready", 30)

    def expect(self, what: str, timeout: float):
        if not self.conn.poll(timeout):
            raise RuntimeError(f"writer: no '{what}' within {timeout}s (alive: {self.process.is_alive()})")
        message = self.conn.recv()
        if message[0] != what:
            raise RuntimeError(f"writer: expected '{what}', got {message!r}")
        return message[1] if len(message) > 1 else None

    def pause(self) -> int:
        self.conn.send("pause")
        return self.expect("paused", 30)

    def resume(self) -> None:
        self.conn.send("resume")

    def stop(self) -> dict:
        self.conn.send("stop")
        self.stats = self.expect("stopped", 30)
        self.process.join(10)
        return self.stats

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)


# -- Redis, exporters, scrapes -------------------------------------------------------------------

class RedisProcess:
    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.log = directory / "redis.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(directory)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)

        def pings() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-1000:]}")
            try:
                return self.client.ping()
            except redis.ConnectionError:
                return False

        wait_for(pings, timeout=10, what="redis-server")
        self.meter: CpuMeter | None = None  # made at the first cpu_seconds()

    def cpu_seconds(self) -> float:
        """The CPU redis-server has used, as the exporters' is measured (CpuMeter)."""
        if self.meter is None:
            self.meter = CpuMeter(self.process.pid)
        return self.meter.seconds()

    def stop(self) -> None:
        self.client.close()
        stop_process(self.process, 10)
        if self.meter is not None:
            self.meter.close()


@dataclass
class Exporter:
    name: str
    command: list[str]
    redis_port: int
    log: Path
    accept: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    http_ms: list[float] = field(default_factory=list)
    own_ms: list[float] = field(default_factory=list)
    redis_ms: list[float] = field(default_factory=list)  # Redis' CPU while each scrape ran (the writer's share too)
    first_ms: float = 0.0
    samples: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    meter: CpuMeter | None = None  # made at the first cpu_seconds()
    restarts: int = 0

    def start(self) -> None:
        precompile(self.command[0])
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [*self.command, "--host", "127.0.0.1", "--port", str(self.port),
                 "--redis-url", f"redis://127.0.0.1:{self.redis_port}/0"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=die_with_parent)

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"exporter '{self.name}' exited ({self.process and self.process.returncode}): "
                               f"{self.log.read_text(errors='replace')[-3000:]}")

    def wait_listening(self, timeout: float) -> None:
        def listening() -> bool:
            if self.process is not None and self.process.poll() is not None and self.restarts < 3 \
                    and b"Address already in use" in self.log.read_bytes():
                # free_port's port was taken before the exporter bound it (the writer's and
                # Redis' sockets come and go): another port.
                self.restarts += 1
                self.port = free_port()
                self.start()
                return False
            self.check()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_for(listening, timeout=timeout, what=f"exporter '{self.name}' to listen")

    def scrape(self, timeout: float) -> tuple[float, dict[str, float]]:
        """One HTTP GET /metrics: its wall time (ms) and the sums of the samples by name."""
        self.check()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics", headers={"Accept": self.accept})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
        elapsed = (time.perf_counter() - start) * 1e3
        if response.status != 200:
            raise RuntimeError(f"exporter '{self.name}': HTTP {response.status}")
        parse = parse_openmetrics if content_type.startswith("application/openmetrics-text") else parse_text
        sums: dict[str, float] = defaultdict(float)
        samples = 0
        for family in parse(body.decode()):
            for sample in family.samples:
                sums[sample.name] += sample.value
                samples += 1
        self.samples = samples
        return elapsed, sums

    def cpu_seconds(self) -> float:
        assert self.process is not None
        if self.meter is None:
            self.meter = CpuMeter(self.process.pid)
        return self.meter.seconds()

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        return round(proc_status(self.process.pid, "VmHWM") / 1024, 1)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10)
        if self.meter is not None:
            self.meter.close()


def sleep_until(target: float, watched: list[Exporter], writer: WriterProcess) -> None:
    """Bounded wait that notices a dead exporter or writer within a second."""
    while (left := target - time.monotonic()) > 0:
        time.sleep(min(left, 1.0))
        for exporter in watched:
            exporter.check()
        if not writer.process.is_alive():
            raise RuntimeError(f"writer exited ({writer.process.exitcode})")


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
        peak = {exporter.name: exporter.peak_rss_mb() for exporter in everyone}
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


# -- report --------------------------------------------------------------------------------------

def print_rate(r: dict) -> None:
    w = r["writer"]
    load = r["load_average"]
    print(f"\n{r['rate']:,} jobs/s over {r['queues']} queues, {r['failure_share']:.0%} failed, {r['duration_s']:g} s, "
          f"a scrape every {r['interval_s']:g} s ({r['scrapes']} scrapes); load average {load['start'][0]} -> "
          f"{load['end'][0]}")
    print(f"  writer: {w['jobs']:,} jobs in {w['active_seconds']} s, {w['achieved_rate']:,} jobs/s achieved "
          f"(ticks of {TICK * 1e3:g} ms written in {w['median_tick_ms']} ms median, {w['slowest_tick_ms']} ms at most, "
          f"{w['late_ticks']} of {w['ticks']} ticks late, at most "
          f"{w['max_behind_jobs']:,} jobs behind; {w['cleanups']} cleanups removed {w['cleanup_removed']:,} entries); "
          f"Redis {r['redis']['used_memory_mb']} MB, {r['redis']['keys']:,} keys")
    share = f"{r['timed_share']:.1%}" if r["timed_share"] is not None else "-"
    print(f"  written after the first scrape {r['written']:,}, counted {r['counted']:,}, timed {r['timed']:,} "
          f"({share} of counted), not timed {r['not_timed']:,}"
          f"{'' if r['consistent'] else '  (timed + not timed != counted!)'}")
    print(f"  {'exporter':<11} {'median ms':>10} {'max ms':>9} {'own median ms':>14} {'CPU ms/scrape':>14} "
          f"{'Redis CPU ms':>13} {'first ms':>9} {'samples':>8} {'peak RSS MB':>12}")
    for e in r["exporters"]:
        print(f"  {e['name']:<11} {e['median_ms']:>10} {e['max_ms']:>9} {e['own_median_ms']:>14} {e['cpu_ms']:>14} "
              f"{e.get('redis_cpu_ms', '-'):>13} {e['first_ms']:>9} {e['samples']:>8} {e['peak_rss_mb']:>12}")
    print(f"  per timed job ({r['timed_per_scrape']:,} per scrape): {r['us_per_timed_job']} us of wall time, "
          f"{r['us_per_timed_job_cpu']} us of CPU; per counted job {r['us_per_counted_job']} us of wall time")
    if "peer" in r:
        p = r["peer"]
        print(f"  timing on - peer ({p['exporter']}, counted {p['counted']:,}): {p['median_ms_difference']} ms median, "
              f"{p['cpu_ms_difference']} ms CPU per scrape; per newly failed job ({p['failed_per_scrape']:,.0f} per "
              f"scrape) {p['us_per_failed_job']} us of wall time, {p['us_per_failed_job_cpu']} us of CPU; "
              f"CPU a scrape timing on / peer {p.get('cpu_ratio')}, median timing on / peer {p.get('median_ratio')}")
    print(f"  targets (load average {load['start'][0]} -> {load['end'][0]}):")
    for line in target_lines(r):
        print(f"    {line}")


# Issue 25's targets, per rate: (what, the figure in a result, the bound, "max" or "min", unit).
TARGETS: dict[int, tuple[tuple[str, str, float, str, str], ...]] = {
    1000: (("scrape median (timing on)", "on_median_ms", 100.0, "max", "ms"),
           ("exporter CPU per timed job", "us_per_timed_job_cpu", 5.0, "max", "us")),
    5000: (("timed share of counted", "timed_percent", 90.0, "min", "%"),
           ("peak RSS (timing on)", "on_peak_rss_mb", 100.0, "max", "MB")),
}


def targets(r: dict) -> list[dict]:
    """Each target of this rate against its figure: met, or missed by how much. Every rate has
    one: every job counted exactly."""
    on = r["exporters"][0]
    figures = {"on_median_ms": on["median_ms"], "us_per_timed_job_cpu": r["us_per_timed_job_cpu"],
               "timed_percent": None if r["timed_share"] is None else round(r["timed_share"] * 100, 1),
               "on_peak_rss_mb": on["peak_rss_mb"]}
    out = [{"target": "counted == written", "value": r["counted"], "bound": r["written"],
            "met": r["counted"] == r["written"], "missed_by": abs(r["counted"] - r["written"]), "unit": "jobs"}]
    for what, name, bound, kind, unit in TARGETS.get(r["rate"], ()):
        value = figures[name]
        met = value is not None and (value <= bound if kind == "max" else value >= bound)
        missed = None if value is None or met else round(abs(value - bound), 2)
        out.append({"target": f"{what} {'<=' if kind == 'max' else '>='} {bound:g} {unit}", "value": value,
                    "bound": bound, "met": met, "missed_by": missed, "unit": unit})
    return out


def target_lines(r: dict) -> list[str]:
    lines = []
    for t in r["targets"]:
        if t["met"]:
            verdict = "met"
        elif t["missed_by"] is None:
            verdict = "missed (no figure)"
        else:
            share = f", {t['missed_by'] / t['bound']:.0%}" if t["bound"] else ""
            verdict = f"MISSED by {t['missed_by']:,} {t['unit']}{share}"
        lines.append(f"{r['rate']:,} jobs/s: {t['target']}: {t['value']:,} -> {verdict}" if t["value"] is not None
                     else f"{r['rate']:,} jobs/s: {t['target']}: - -> {verdict}")
    return lines


TABLE_HEADER = ("| jobs/s | achieved | written | counted | timed (% of counted) | not timed | on median / max ms "
                "| off median / max ms | us per timed job (CPU) | peak RSS on / off MB |\n"
                "|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
    on, off = r["exporters"][:2]
    share = f" ({r['timed_share']:.1%})" if r["timed_share"] is not None else ""
    return (f"| {r['rate']:,} | {r['writer']['achieved_rate']:,.0f} | {r['written']:,} | {r['counted']:,} "
            f"| {r['timed']:,}{share} | {r['not_timed']:,} | {on['median_ms']} / {on['max_ms']} "
            f"| {off['median_ms']} / {off['max_ms']} | {r['us_per_timed_job']} ({r['us_per_timed_job_cpu']}) "
            f"| {on['peak_rss_mb']} / {off['peak_rss_mb']} |")


def problems(r: dict) -> list[str]:
    found = []
    if r["counted"] != r["written"]:
        found.append(f"{r['rate']} jobs/s: counted {r['counted']} != written {r['written']}")
    if not r["consistent"]:
        found.append(f"{r['rate']} jobs/s: timed + not timed != counted in some scrape")
    if r["first_scrape"]["counted"]:
        found.append(f"{r['rate']} jobs/s: the first scrape counted {r['first_scrape']['counted']} jobs of history")
    if r["writer"]["achieved_rate"] < 0.95 * r["rate"]:
        found.append(f"{r['rate']} jobs/s: the writer achieved only {r['writer']['achieved_rate']} jobs/s")
    return found


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
