"""Fill a Redis with an RQ-shaped dataset: queues, workers and jobs in every registry.

The key layout and hash fields are RQ 2.x's (see docs/benchmarks.md and
/work/shared/reference/rq-in-redis.md): job hashes, queue lists, the started/finished/
failed/deferred/scheduled/canceled registries with their scores, intermediate lists,
scheduler locks, worker hashes and the per-queue worker sets.

Commands are written as raw RESP in large chunks on one socket (like ``redis-cli --pipe``),
so a million jobs load in seconds rather than the minutes redis-py would take.

    python bench/dataset.py --port 6379 --queues 1000 --workers 200 --jobs 1000000
"""

from __future__ import annotations

import argparse
import pickle
import socket
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run by path (python bench/dataset.py): devkit, bench.* are at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit import rq_time

# How each queue's jobs spread over RQ's places, in order; the rest are queued.
SHARES = (("started", 0.01), ("finished", 0.34), ("failed", 0.10), ("deferred", 0.05),
          ("scheduled", 0.05), ("canceled", 0.05))
REGISTRY_KEY = {"started": "wip", "finished": "finished", "failed": "failed", "deferred": "deferred",
                "scheduled": "scheduled", "canceled": "canceled"}
CHUNK = 4000  # commands per write; replies are drained after each chunk
DATA = zlib.compress(pickle.dumps(("bench.jobs.work", None, (1, 2), {"size": 10}), protocol=4))
EXC_INFO = ("Traceback (most recent call last):\n  File \"bench/jobs.py\", line 9, in work\n"
            "    raise ValueError(size)\nValueError: 10\n")


def encode(*args: bytes | str | int | float) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Pipe:
    """Raw pipelining on one socket; every command the filler sends replies with one line."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.pending: list[bytes] = []
        self.sent = 0

    def __call__(self, *args) -> None:
        self.pending.append(encode(*args))
        if len(self.pending) >= CHUNK:
            self.flush()

    def raw(self, command: bytes) -> None:
        self.pending.append(command)
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        count = len(self.pending)
        self.sock.sendall(b"".join(self.pending))
        self.pending.clear()
        self.sent += count
        buffer = b""
        lines = 0
        while lines < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection while filling")
            buffer += chunk
            lines = buffer.count(b"\r\n")
        if buffer.startswith(b"-") or b"\r\n-" in buffer:
            raise RuntimeError(f"redis refused a fill command: {buffer[:200]!r}")

    def close(self) -> None:
        self.flush()
        self.sock.close()


@dataclass(frozen=True)
class Size:
    queues: int
    workers: int
    jobs: int
    queues_per_worker: int = 5
    dead_workers: int = 0
    # The share of queues (spread evenly) that are idle: only queued jobs and a failed registry
    # (kept a year), no job running, finished within its result TTL, deferred, scheduled or canceled.
    idle_share: float = 0.0


def share(text: str) -> float:
    """An argparse type: a share from 0 to 1 (argparse says what is wrong, in one line, exit 2)."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 to 1")
    return value


def queue_name(i: int) -> str:
    return f"q{i:05d}"


def job_id(q: int, j: int) -> str:
    return f"{q:08x}-0000-4000-8000-{j:012x}"  # shaped like RQ's uuid4 ids


def _job_template(origin: str, status: str, now: float) -> tuple[int, bytes]:
    """The HSET arguments after the key, as RESP, shared by every job of one queue and status."""
    fields = {
        "status": status, "origin": origin, "created_at": rq_time(now - 600),
        "enqueued_at": rq_time(now - 590), "description": "bench.jobs.work(1, 2, size=10)",
        "timeout": "180", "data": DATA, "worker_name": "", "started_at": "", "ended_at": "",
    }
    if status in ("started", "finished", "failed"):
        fields["started_at"] = rq_time(now - 300)
        fields["worker_name"] = "w00000"
    if status in ("finished", "failed"):
        fields["ended_at"] = rq_time(now - 290)
    if status == "finished":
        fields["result_ttl"] = "500"
    if status == "failed":
        fields["exc_info"] = EXC_INFO
    parts = []
    for name, value in fields.items():
        parts.append(encode(name)[4:])  # drop the "*1\r\n" array header of each
        parts.append(encode(value)[4:])
    return len(fields) * 2, b"".join(parts)


def _score(registry: str, k: int, now: float) -> float | str:
    """Scores as RQ writes them; about one in ten is expired (or overdue) to exercise ZCOUNT."""
    old = k % 10 == 0
    if registry == "started":
        return int(now) - 100 if old else int(now) + 60  # heartbeat deadline
    if registry == "finished":
        return int(now) - 10 if old else int(now) + 500  # end + result_ttl
    if registry == "failed":
        return int(now) + 31_536_000  # end + a year
    if registry == "deferred":
        return "+inf"
    if registry == "scheduled":
        return int(now) - 30 if old else int(now) + 3600  # due time
    return int(now) - k  # canceled: cancel time


def fill(host: str, port: int, size: Size, prefix: str = "rq", now: float | None = None) -> dict:
    """Writes the dataset; returns counts of what it wrote (per status, over all queues)."""
    now = time.time() if now is None else now
    started = time.perf_counter()
    pipe = Pipe(host, port)
    totals: dict[str, int] = {}
    names = [queue_name(i) for i in range(size.queues)]
    for i, name in enumerate(names):
        jobs = size.jobs // size.queues + (1 if i < size.jobs % size.queues else 0)
        idle = int((i + 1) * size.idle_share) > int(i * size.idle_share)
        plan = [(status, int(jobs * share) if status == "failed" or not idle else 0) for status, share in SHARES]
        plan.insert(0, ("queued", jobs - sum(n for _, n in plan)))
        j = 0
        for status, n in plan:
            if n == 0:
                continue
            count, tail = _job_template(name, status, now)
            ids = [job_id(i, j + k) for k in range(n)]
            j += n
            for jid in ids:
                key = f"{prefix}:job:{jid}".encode()
                pipe.raw(b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (count + 2, len(key), key) + tail)
            totals[status] = totals.get(status, 0) + n
            for start in range(0, n, 1000):
                part = ids[start:start + 1000]
                if status == "queued":
                    pipe("RPUSH", f"{prefix}:queue:{name}", *part)
                    continue
                registry = REGISTRY_KEY[status]
                args = []
                for k, jid in enumerate(part, start):
                    member = f"{jid}:{k:032x}" if status == "started" else jid  # 2.x: id:execution (uuid4 hex)
                    args += [_score(status, k, now), member]
                pipe("ZADD", f"{prefix}:{registry}:{name}", *args)
        pipe("SADD", f"{prefix}:queues", f"{prefix}:queue:{name}")
        if i % 10 == 0 and jobs and not idle:
            pipe("RPUSH", f"{prefix}:queue:{name}:intermediate", job_id(i, 0))
        if i % 5 == 0:
            pipe("SET", f"{prefix}:scheduler-lock:{name}", "bench-host:1", "EX", 3600)
    for w in range(size.workers + size.dead_workers):
        wname = f"w{w:05d}"
        key = f"{prefix}:worker:{wname}"
        listens = [names[(w * size.queues_per_worker + k) % len(names)]
                   for k in range(min(size.queues_per_worker, len(names)))] if names else ["default"]
        pipe("SADD", f"{prefix}:workers", key)
        for q in listens:
            pipe("SADD", f"{prefix}:workers:{q}", key)
        if w >= size.workers:
            continue  # dead: listed, but its hash has expired
        busy = w % 2 == 0
        pipe("HSET", key, "birth", rq_time(now - 86400), "last_heartbeat", rq_time(now - 5),
             "queues", ",".join(listens), "pid", 1000 + w, "hostname", f"bench-{w % 16}",
             "ip_address", "127.0.0.1", "version", "2.12.0", "python_version", "3.11.7",
             "state", "busy" if busy else "idle", "current_job", job_id(0, w) if busy else "",
             "current_job_working_time", 3 if busy else 0,
             "successful_job_count", 1000 + w, "failed_job_count", w % 7, "total_working_time", 3600.5 + w)
        pipe("EXPIRE", key, 3600)
    pipe.close()
    return {"seconds": round(time.perf_counter() - started, 2), "commands": pipe.sent, **totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--dead-workers", type=int, default=0)
    parser.add_argument("--idle-share", type=share, default=0.0,
                        help="share of queues with only queued and failed jobs")
    args = parser.parse_args()
    print(fill(args.host, args.port, Size(args.queues, args.workers, args.jobs, dead_workers=args.dead_workers,
                                          idle_share=args.idle_share)))


if __name__ == "__main__":
    main()
