"""Memory of the real exporter process over many HTTP scrapes (the long version of
tests/test_faults.py::test_memory_is_flat_over_ten_thousand_scrapes, which scrapes in process).

    .venv/bin/python bench/memory.py                  # 10,000 scrapes, 20 queues, 10 workers
    .venv/bin/python bench/memory.py --scrapes 2000   # shorter

Starts its own redis-server on a free loopback port, fills it with RQ-shaped data, starts the
exporter (`python -m rq_exporter_ng`), scrapes /metrics over HTTP as fast as one client can and
prints the exporter's RSS (from /proc) at each tenth of the run. Everything it starts is
stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

if __package__ in (None, ""):  # run by path (python bench/memory.py): devkit is at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devkit import RedisServer, free_port, http_ok, proc_status, rq_time, stop_process, wait_for


def rss_kib(pid: int) -> int:
    return proc_status(pid, "VmRSS")


def fill(client: redis.Redis, queues: int, workers: int) -> None:
    now = rq_time()
    pipe = client.pipeline(transaction=False)
    for q in range(queues):
        name = f"queue-{q}"
        pipe.sadd("rq:queues", f"rq:queue:{name}")
        for j in range(5):
            job = f"{name}-job-{j}"
            pipe.rpush(f"rq:queue:{name}", job)
            pipe.hset(f"rq:job:{job}", mapping={"status": "queued", "origin": name, "enqueued_at": now,
                                                 "created_at": now})
        pipe.zadd(f"rq:finished:{name}", {f"{name}-done-{j}": time.time() + 500 for j in range(5)})
    for w in range(workers):
        key = f"rq:worker:w{w}"
        pipe.sadd("rq:workers", key)
        pipe.hset(key, mapping={"state": "idle", "queues": f"queue-{w % queues}", "last_heartbeat": now,
                                "successful_job_count": 3})
    pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--workers", type=int, default=10)
    args = parser.parse_args()

    server = RedisServer().start()
    port = free_port()
    exporter = None
    try:
        fill(server.client(socket_timeout=2), args.queues, args.workers)
        exporter = subprocess.Popen([sys.executable, "-m", "rq_exporter_ng", "--host", "127.0.0.1", "--port", str(port),
                                     "--redis-url", server.url, "--log-level", "WARNING"])
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: http_ok(url, timeout=2), timeout=15, what="the exporter")
        for _ in range(200):  # warm-up
            urllib.request.urlopen(url, timeout=10).read()
        baseline = rss_kib(exporter.pid)
        print(f"exporter RSS after warm-up: {baseline} KiB; {args.scrapes} scrapes of "
              f"{args.queues} queues / {args.workers} workers")
        start = time.monotonic()
        step = max(1, args.scrapes // 10)
        for i in range(1, args.scrapes + 1):
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
            if i % step == 0:
                print(f"  {i:>6} scrapes  RSS {rss_kib(exporter.pid)} KiB")
        assert b"rq_up 1.0" in body
        elapsed = time.monotonic() - start
        final = rss_kib(exporter.pid)
        print(f"{args.scrapes} scrapes in {elapsed:.1f} s ({1000 * elapsed / args.scrapes:.2f} ms each); "
              f"RSS {baseline} -> {final} KiB ({final - baseline:+d} KiB)")
    finally:
        if exporter is not None:
            stop_process(exporter, 10)
        server.cleanup()
    return 0


if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
