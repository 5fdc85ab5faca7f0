"""The reader on data as RQ writes it: counts, the oldest job's age, the key prefix, the queue filters,
worker-only queues, workers and dead workers.

Pure logic (prefixes, filters, expiry arithmetic, worker-only queues) runs on fakeredis, RQ 1.16's
layout on a real redis-server. Malformed data is in test_reader_malformed.py, the fast paths in
test_reader_fast_paths.py, real RQ workers in test_reader_rq_workers.py.
"""

from __future__ import annotations

import time

import fakeredis
import pytest
from reader_data import add_queue, add_worker, queue, worker

from devkit import rq_time
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.loading import load
from rq_exporter_ng.reader import read_snapshot


@pytest.fixture
def fake():
    return fakeredis.FakeRedis()


def test_counts_exclude_what_rq_cleanup_would_remove(fake):
    now = time.time()
    add_queue(fake, "q", ["j1", "j2"])
    fake.zadd("rq:finished:q", {"f-expired": now - 10, "f-live": now + 100, "f-forever": float("inf")})
    # failure_ttl=-1 stores -1: RQ never cleans it, so it is counted
    fake.zadd("rq:failed:q", {"x-expired": now - 5, "x-live": now + 1000, "x-forever": -1})
    fake.zadd("rq:wip:q", {"s-live:exec1": now + 60, "s-abandoned:exec2": now - 5})
    fake.zadd("rq:scheduled:q", {"due": now - 100, "later": now + 100})
    fake.zadd("rq:deferred:q", {"d1": 0, "d2": 0, "d3": 0})
    fake.zadd("rq:canceled:q", {"c1": now - 1000})  # canceled entries count whatever their score
    fake.rpush("rq:queue:q:intermediate", "taken")
    fake.set("rq:scheduler-lock:q", "host")
    q = queue(read_snapshot(fake, Keys("rq")), "q")
    assert (q.queued, q.intermediate) == (2, 1)
    assert (q.started, q.abandoned) == (1, 1)
    assert (q.finished, q.failed) == (2, 2)
    assert (q.scheduled, q.overdue_scheduled) == (2, 1)
    assert (q.deferred, q.canceled) == (3, 1)
    assert q.scheduler_active is True
    assert 29 <= q.oldest_job_age <= 35


def test_empty_and_missing_keys_are_zero(fake):
    fake.sadd("rq:queues", "rq:queue:ghost")  # RQ keeps the set entry after the list empties
    snapshot = read_snapshot(fake, Keys("rq"))
    q = queue(snapshot, "ghost")
    assert (q.queued, q.started, q.finished, q.failed, q.canceled) == (0, 0, 0, 0, 0)
    assert q.oldest_job_age == 0.0 and q.scheduler_active is False
    assert snapshot.problems == ()
    assert snapshot.round_trips == 2  # no head job to look up


def test_round_trips_are_constant(fake):
    for n in range(30):
        add_queue(fake, f"q{n}", [f"j{n}"])
        add_worker(fake, f"w{n}", f"q{n}")
    snapshot = read_snapshot(fake, Keys("rq"))
    assert snapshot.round_trips == 3
    assert len(snapshot.queues) == 30 and len(snapshot.workers) == 30


def test_oldest_age_uses_the_head_and_falls_back_to_created_at(fake):
    add_queue(fake, "q", ["head", "second"], enqueued_ago=100)
    fake.hdel("rq:job:head", "enqueued_at")
    age = queue(read_snapshot(fake, Keys("rq")), "q").oldest_job_age
    assert 104 <= age <= 110  # created_at of the head, 105 s ago


def test_key_prefix(fake):
    add_queue(fake, "q", ["j1"], prefix="custom")
    add_worker(fake, "w", "q", prefix="custom")
    fake.zadd("custom:failed:q", {"f": time.time() + 100})
    add_queue(fake, "other", ["j9"])  # under the default prefix: not ours
    snapshot = read_snapshot(fake, Keys("custom"))
    assert [q.name for q in snapshot.queues] == ["q"]
    assert queue(snapshot, "q").failed == 1 and queue(snapshot, "q").queued == 1
    assert [w.name for w in snapshot.workers] == ["w"]
    assert [q.name for q in read_snapshot(fake, Keys("rq")).queues] == ["other"]


def test_queue_filters(fake):
    for name in ("high", "high-tmp", "default", "low"):
        add_queue(fake, name, [f"j-{name}"])
    add_worker(fake, "w", "high,high-tmp,reports,low-only")
    wants = load(["--queue-include", "high*,default,reports", "--queue-exclude", "*tmp*"]).wants_queue
    snapshot = read_snapshot(fake, Keys("rq"), wants)
    assert [q.name for q in snapshot.queues] == ["default", "high"]
    # queues only a worker names are filtered too
    assert snapshot.worker_only_queues == ("reports",)


def test_worker_only_queues(fake):
    add_queue(fake, "known", [])
    add_worker(fake, "w1", "known,new")
    add_worker(fake, "w2", "new,other")
    snapshot = read_snapshot(fake, Keys("rq"))
    assert snapshot.worker_only_queues == ("new", "other")


def test_workers_and_dead_workers(fake):
    add_worker(fake, "busy-one", "a,b", state="busy", successful_job_count=5, failed_job_count=2,
               total_working_time="12.5")
    add_worker(fake, "fresh", "a")  # counters are created lazily: missing means 0
    fake.sadd("rq:workers", "rq:worker:killed")  # its hash expired: a dead worker
    snapshot = read_snapshot(fake, Keys("rq"))
    busy = worker(snapshot, "busy-one")
    assert busy.queues == ("a", "b") and busy.state == "busy"
    assert (busy.successful_jobs, busy.failed_jobs, busy.working_seconds) == (5, 2, 12.5)
    assert abs(busy.last_heartbeat - (time.time() - 3)) < 2
    fresh = worker(snapshot, "fresh")
    assert (fresh.successful_jobs, fresh.failed_jobs, fresh.working_seconds) == (0, 0, 0.0)
    assert snapshot.dead_workers == 1
    assert snapshot.problems == ()


@pytest.mark.redis
def test_rq_1_16_layout(redis_db):
    """Keys as RQ 1.16.2 writes them (read from its source): bare job ids in the started registry,
    registry scores from BaseRegistry.add (ttl=-1 -> +inf; FailedJobRegistry keeps -1), the worker
    hash of register_birth + set_state, counters from HINCRBY/HINCRBYFLOAT."""
    r = redis_db.client()
    now = int(time.time())
    r.sadd("rq:queues", "rq:queue:default", "rq:queue:low")
    r.rpush("rq:queue:default", "job-q1", "job-q2")
    for job_id, status, extra in (
        ("job-q1", "queued", {"enqueued_at": rq_time(now - 42)}),
        ("job-q2", "queued", {"enqueued_at": rq_time(now - 1)}),
        ("job-run", "started", {"enqueued_at": rq_time(now - 50), "started_at": rq_time(now - 5)}),
    ):
        r.hset(f"rq:job:{job_id}", mapping={
            "status": status, "origin": "default", "created_at": rq_time(now - 60), "data": b"x\x9c\x03\x00",
            "description": "app.f()", "timeout": 180, "started_at": "", "ended_at": "", "last_heartbeat": "",
            "worker_name": "", "success_callback_name": "", "failure_callback_name": "",
            "stopped_callback_name": "", **extra})
    r.rpush("rq:queue:default:intermediate", "job-taken")  # 1.15+ moves a dequeued job here
    r.zadd("rq:wip:default", {"job-run": now + 240, "job-lost": now - 30})  # 1.x: no execution suffix
    r.zadd("rq:finished:default", {"f1": now + 500, "f2": "+inf", "f-old": now - 1})
    r.zadd("rq:failed:default", {"x1": now + 31536000, "x2": -1})
    r.zadd("rq:deferred:default", {"d1": "+inf"})
    r.zadd("rq:scheduled:default", {"s1": now + 3600})
    r.set("rq:scheduler-lock:default", "host:1234")
    r.sadd("rq:workers", "rq:worker:abc123")
    r.sadd("rq:workers:default", "rq:worker:abc123")
    r.hset("rq:worker:abc123", mapping={
        "birth": rq_time(now - 600), "last_heartbeat": rq_time(now - 2), "queues": "default,low",
        "pid": 4242, "hostname": "h", "ip_address": "127.0.0.1:5555", "version": "1.16.2",
        "python_version": "3.11.7", "state": "busy", "current_job": "job-run",
        "successful_job_count": 7, "failed_job_count": 1, "total_working_time": "3.25"})
    snapshot = read_snapshot(r, Keys("rq"))
    assert snapshot.problems == ()
    d = queue(snapshot, "default")
    assert (d.queued, d.intermediate, d.started, d.abandoned) == (2, 1, 1, 1)
    assert (d.finished, d.failed, d.deferred, d.scheduled, d.canceled) == (2, 2, 1, 1, 0)
    assert d.scheduler_active and d.overdue_scheduled == 0
    assert 41 <= d.oldest_job_age <= 45
    assert queue(snapshot, "low").queued == 0
    w = worker(snapshot, "abc123")
    assert (w.state, w.queues, w.successful_jobs, w.failed_jobs, w.working_seconds) == \
        ("busy", ("default", "low"), 7, 1, 3.25)


def test_a_hash_of_counters_alone_is_a_dead_worker_not_a_live_one():
    """What a work horse writes back when it finishes a job after its worker's main process was
    killed and the hash expired: the three counters, no TTL, still in rq:workers. Every live RQ
    worker (0.13 to 3.0) registers birth and last_heartbeat together, so it is a dead worker.
    test_reader_rq_workers.py makes this state with a real worker."""
    fake = fakeredis.FakeRedis()
    fake.sadd("rq:workers", "rq:worker:zombie", "rq:worker:alive")
    fake.hset("rq:worker:zombie", mapping={"successful_job_count": "3", "failed_job_count": "0",
                                           "total_working_time": "31.5"})
    add_worker(fake, b"alive", b"default", state="idle")
    snapshot = read_snapshot(fake, Keys("rq"))
    assert [w.name for w in snapshot.workers] == ["alive"]
    assert snapshot.dead_workers == 1
