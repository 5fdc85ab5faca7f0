"""Whether two installs of the exporter serve the same series with the same values, scrape by scrape,
over the benchmark's dataset while jobs end between scrapes (job timing's counters and histograms
move). Both exporters are started and warmed up first; then each round ends jobs in some queues
(finished and failed, RQ's default TTLs, a TTL it has to learn, kept forever) and scrapes both.

    .venv/bin/python bench/same_values.py --queues 10000 --workers 2000 --jobs 200000 \\
        --other /tmp/base/.venv/bin/rq-exporter

Every series must be served by both (those of the exporter process itself aside: its scrape
durations, process_*, python_*), and job timing's (counters, histograms, exception classes) with
the same values; the others' values move with the instant of the scrape (ages, heartbeats), so
they are not compared. Exits 1 on the first difference, printing up to 20 differing series.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run by path: devkit, bench.* are at the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dataset import Size, fill, queue_name
from bench.run import Exporter
from devkit import RedisServer, rq_time

OWN = (b"process_", b"python_", b"rq_exporter_scrape", b"rq_exporter_build", b"rq_exporter_up")
TIMING = (b"rq_job_duration_seconds", b"rq_job_wait_seconds", b"rq_jobs_", b"rq_exporter_jobs_not_timed",
          b"rq_job_exceptions_total")


def series(body: bytes) -> dict[bytes, bytes]:
    out = {}
    for line in body.splitlines():
        if not line or line.startswith(b"#") or line.startswith(OWN):
            continue
        name, _, value = line.rpartition(b" ")
        out[name] = value
    return out


def end_jobs(client, queues: int, round_: int, rng: random.Random) -> int:
    """Jobs ending now in some queues; returns how many."""
    now = time.time()
    pipe = client.pipeline(transaction=False)
    count = 0
    for i in rng.sample(range(queues), min(queues, 50)):
        for k in range(rng.randint(1, 4)):
            job = f"same-{round_}-{i}-{k}"
            status, ttl = rng.choice([("finished", 500), ("failed", 31_536_000), ("finished", 86_400),
                                      ("finished", -1)])
            ended = now - rng.uniform(0, 2)
            fields = {"status": status, "ended_at": rq_time(ended), "started_at": rq_time(ended - 1.5),
                      "enqueued_at": rq_time(ended - 3), "origin": queue_name(i),
                      ("result_ttl" if status == "finished" else "failure_ttl"): str(ttl)}
            pipe.hset(f"rq:job:{job}", mapping=fields)
            score = float("inf") if ttl == -1 else int(ended) + ttl
            pipe.zadd(f"rq:{status}:{queue_name(i)}", {job: score})
            count += 1
    pipe.execute()
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--other", required=True, help="the other install's rq-exporter entry point")
    args = parser.parse_args()
    rng = random.Random(25)
    with RedisServer() as server:
        client = server.client(socket_timeout=60)
        fill("127.0.0.1", server.port, Size(args.queues, args.workers, args.jobs))
        exporters = [Exporter("this", [sys.executable, "-m", "rq_exporter_ng"], server.port),
                     Exporter("other", [args.other], server.port)]
        try:
            for exporter in exporters:
                exporter.start(startup_timeout=120)
            for exporter in exporters:
                exporter.scrape(120)  # its first: what ended before is history (its floor)
            time.sleep(3)  # past both floors, for the jobs below that ended up to 2 s ago
            for round_ in range(args.rounds):
                ended = end_jobs(client, args.queues, round_, rng)
                time.sleep(1.1)  # a new second: windows move
                this, other = (series(exporter.scrape(120)[0]) for exporter in exporters)
                timed = sum(1 for k in this if k.startswith(TIMING))
                differing = sorted(k for k in this.keys() | other.keys()
                                   if k not in this or k not in other or (k.startswith(TIMING) and this[k] != other[k]))
                counted = sum(float(v) for k, v in this.items() if k.startswith((b"rq_jobs_finished_total",
                                                                                 b"rq_jobs_failed_total")))
                print(json.dumps({"round": round_, "jobs ended": ended, "series": len(this), "timing series": timed,
                                  "jobs counted so far": counted, "differing": len(differing)}))
                if differing:
                    for key in differing[:20]:
                        print(key.decode(), this.get(key), other.get(key))
                    return 1
        finally:
            for exporter in exporters:
                exporter.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
