"""The synthetic RQ writer of bench/throughput.py: a subprocess that plays RQ 2.x workers finishing
jobs at a given rate, each job's writes in one MULTI/EXEC as RQ makes them (what it writes, and why:
bench/throughput.py's docstring). bench/timing.py and bench/instructions.py write the same fields
with its Stamps and EXC.
"""

from __future__ import annotations

import base64
import math
import multiprocessing
import os
import pickle
import random
import signal
import socket
import statistics
import time
import uuid
import zlib

import hiredis

from bench.processes import die_with_parent

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
