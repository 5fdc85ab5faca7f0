"""What the reader's tests (test_reader_counts.py, test_reader_malformed.py, test_reader_fast_paths.py)
share: RQ's queue and worker keys written by hand, as RQ writes them, and a snapshot's queue or
worker by name."""

from __future__ import annotations

import time

from devkit import rq_time
from rq_exporter_ng.snapshot import Snapshot


def add_queue(r, name: str | bytes, job_ids=(), enqueued_ago: float = 30.0, prefix: str = "rq") -> None:
    raw = name.encode() if isinstance(name, str) else name
    p = prefix.encode()
    r.sadd(p + b":queues", p + b":queue:" + raw)
    for i, job_id in enumerate(job_ids):
        r.rpush(p + b":queue:" + raw, job_id)
        r.hset(p + b":job:" + job_id.encode(), mapping={
            "status": "queued", "origin": raw,
            "created_at": rq_time(time.time() - enqueued_ago - 5),
            "enqueued_at": rq_time(time.time() - enqueued_ago + i),
        })


def add_worker(r, name: str | bytes, queues: str | bytes, state: str = "idle", prefix: str = "rq", **fields) -> None:
    raw = name.encode() if isinstance(name, str) else name
    key = prefix.encode() + b":worker:" + raw
    r.sadd(prefix.encode() + b":workers", key)
    r.hset(key, mapping={"state": state, "queues": queues, "last_heartbeat": rq_time(time.time() - 3),
                         "birth": rq_time(time.time() - 100), "pid": 1, **fields})


def queue(snapshot: Snapshot, name: str):
    (found,) = [q for q in snapshot.queues if q.name == name]
    return found


def worker(snapshot: Snapshot, name: str):
    (found,) = [w for w in snapshot.workers if w.name == name]
    return found
