"""Real redis-server, real `rq worker` processes doing real jobs, the real exporter: every metric
checked against the truth computed independently, with RQ's own read APIs (never the ones that
clean up) and raw Redis reads.

Runs under RQ 2.x (.venv) and RQ 3.0 (.venv-rq3).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta, timezone
from pathlib import Path

import jobs
import pytest
import redis
import rq
from rq import Queue, Retry, Worker
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq_scenario import KEY_TTL

from devkit import run, wait_for
from rq_exporter_ng.families.catalogue import JOB_STATUSES
from rq_exporter_ng.snapshot import WORKER_STATES
from support import Exporter, RQWorker, Samples, kill_if_alive, worker_env

pytestmark = pytest.mark.workers

RQ_MAJOR = int(rq.__version__.split(".")[0])
QUICK = ("-w", "rq_workers.QuickHeartbeatWorker")


def labelled(samples: Samples, name: str) -> dict[tuple, float]:
    """{label values in label-name order: value} of one family."""
    return {tuple(v for _, v in sorted(labels)): value for labels, value in samples.series(name).items()}


def truth_of_queues(conn: redis.Redis, names: list[str]) -> dict[str, dict]:
    """What RQ reports per queue after its cleanup, computed with RQ's read-only calls."""
    now = time.time()
    truth = {}
    for name in names:
        queue = Queue(name, connection=conn)

        def live(registry) -> int:
            return len(registry.get_job_ids(cleanup=False)) - len(registry.get_expired_job_ids(int(now)))

        started = StartedJobRegistry(name, connection=conn)
        scheduled = ScheduledJobRegistry(name, connection=conn)
        head = conn.lindex(queue.key, 0)
        truth[name] = {
            "queued": queue.count,
            "started": live(started),
            "finished": live(FinishedJobRegistry(name, connection=conn)),
            "failed": live(FailedJobRegistry(name, connection=conn)),
            "deferred": len(DeferredJobRegistry(name, connection=conn).get_job_ids(cleanup=False)),
            "scheduled": len(scheduled.get_job_ids(cleanup=False)),
            "canceled": len(CanceledJobRegistry(name, connection=conn).get_job_ids(cleanup=False)),
            "rate_limited": rate_limited_of(conn, name),
            "abandoned": len(started.get_expired_job_ids(int(now))),
            "overdue": len(scheduled.get_jobs_to_schedule(int(now) - 1)),
            "intermediate": conn.llen(f"rq:queue:{name}:intermediate"),
            "scheduler": int(conn.exists(f"rq:scheduler-lock:{name}")),
            "head_enqueued_at": queue.fetch_job(head.decode()).enqueued_at if head else None,
        }
    return truth


def rate_limited_of(conn: redis.Redis, name: str) -> int:
    """RQ 3.0: the queue's jobs waiting for a rate limit slot, by RQ's own registries; 0 before."""
    if RQ_MAJOR < 3:
        return 0
    from rq.job import Job
    from rq.rate_limit import RateLimitRegistry
    waiting = [i for r in RateLimitRegistry.all(conn) for i in r.get_rate_limited_job_ids()]
    return sum(1 for job in Job.fetch_many(waiting, connection=conn)
               if job is not None and job.origin == name and job.get_status(refresh=False) == "rate_limited")


def truth_of_workers(conn: redis.Redis) -> tuple[list, int]:
    """Live workers as RQ reads them, and the dead ones (listed, hash gone). Worker.all() would
    SREM the dead ones, so each member is looked up by key, and only when its hash exists."""
    live, dead = [], 0
    lookup = redis.Redis(connection_pool=redis.ConnectionPool.from_url(conn_url(conn)))  # RQ changes its timeout
    for key in sorted(m.decode() for m in conn.smembers("rq:workers")):
        if not conn.exists(key):
            dead += 1
            continue
        live.append(Worker.find_by_key(key, connection=lookup))
    return live, dead


def conn_url(conn: redis.Redis) -> str:
    kwargs = conn.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def assert_queue_metrics(samples: Samples, truth: dict[str, dict]) -> None:
    jobs_seen = labelled(samples, "rq_jobs")
    assert {q for q, _ in jobs_seen} == set(truth)
    for name, t in truth.items():
        for status in JOB_STATUSES:
            assert jobs_seen[(name, status)] == t[status], (name, status, t)
        assert samples.value("rq_queue_abandoned_jobs", queue=name) == t["abandoned"], name
        assert samples.value("rq_queue_overdue_scheduled_jobs", queue=name) == t["overdue"], name
        assert samples.value("rq_queue_intermediate_jobs", queue=name) == t["intermediate"], name
        assert samples.value("rq_queue_scheduler_active", queue=name) == t["scheduler"], name
        age = samples.value("rq_queue_oldest_job_age_seconds", queue=name)
        if t["head_enqueued_at"] is None:
            assert age == 0, name
        else:
            enqueued = t["head_enqueued_at"].replace(tzinfo=timezone.utc).timestamp()
            assert abs(age - (time.time() - enqueued)) < 2, (name, age)


def assert_worker_metrics(samples: Samples, live: list, dead: int, queues: list[str]) -> None:
    assert samples.value("rq_dead_workers") == dead
    by_state = dict.fromkeys(WORKER_STATES, 0)
    per_queue = {(q, state): 0 for q in queues for state in WORKER_STATES}
    for w in live:
        by_state[w.get_state()] = by_state.get(w.get_state(), 0) + 1
        for q in w.queue_names():
            per_queue[(q, w.get_state())] = per_queue.get((q, w.get_state()), 0) + 1
    assert labelled(samples, "rq_live_workers") == {(s,): n for s, n in by_state.items()}
    assert labelled(samples, "rq_queue_workers") == per_queue

    # per-worker series, rq-exporter 3.x's labels
    assert labelled(samples, "rq_workers") == {(w.name, ",".join(w.queue_names()), w.get_state()): 1 for w in live}
    for w in live:
        key = (w.name, ",".join(w.queue_names()))
        assert labelled(samples, "rq_workers_success_total")[key] == w.successful_job_count
        assert labelled(samples, "rq_workers_failed_total")[key] == w.failed_job_count
        assert labelled(samples, "rq_workers_working_time_total")[key] == pytest.approx(w.total_working_time)
        heartbeat = labelled(samples, "rq_worker_last_heartbeat_timestamp_seconds")[key]
        # no heartbeat between the two readings (see consistent), so the same instant
        assert heartbeat == pytest.approx(w.last_heartbeat.replace(tzinfo=timezone.utc).timestamp(), abs=1e-3)


def consistent(exporter: Exporter, conn: redis.Redis, queues: list[str]):
    """A scrape taken between two equal readings of the truth (workers keep moving)."""
    def attempt():
        before = truth_of_queues(conn, queues), truth_of_workers(conn)
        samples = exporter.scrape()
        after = truth_of_queues(conn, queues), truth_of_workers(conn)
        def signature(workers):
            return [(w.name, w.get_state(), w.successful_job_count, w.failed_job_count, w.last_heartbeat)
                    for w in workers]

        same = before[0] == after[0] and signature(before[1][0]) == signature(after[1][0]) \
            and before[1][1] == after[1][1]
        return same and (samples, after[0], after[1])
    return wait_for(attempt, timeout=10, interval=0.2, what="a scrape between two equal truths")


@pytest.mark.slow
def test_jobs_and_workers_against_rq(redis_db, tmp_path):
    conn = redis_db.client()
    default, low, slow = (Queue(n, connection=conn) for n in ("default", "low", "slow"))

    # Enqueued before any worker runs. First a job whose hash expires while it waits (RQ's ttl):
    # the worker moves it into the intermediate queue (one-queue workers dequeue with BLMOVE),
    # finds no hash and leaves it there until its maintenance, 10 minutes on.
    expiring = default.enqueue(jobs.sleep_for, 0, ttl=1)
    for _ in range(3):
        default.enqueue(jobs.sleep_for, 0)
    default.enqueue(jobs.fail)
    # Registry entries that expire within seconds: RQ's cleanup would drop them, so must we.
    default.enqueue(jobs.sleep_for, 0, result_ttl=1)
    default.enqueue(jobs.fail, failure_ttl=1)
    retried = default.enqueue(jobs.fail, retry=Retry(max=2))  # 3 attempts, then failed
    parent = low.enqueue(jobs.sleep_for, 0)  # low has no worker: stays queued
    deferred = default.enqueue(jobs.sleep_for, 0, depends_on=parent)
    canceled = low.enqueue(jobs.sleep_for, 0)
    canceled.cancel()
    default.enqueue_in(timedelta(hours=1), jobs.sleep_for, 0)  # not due
    low.enqueue_in(timedelta(seconds=1), jobs.sleep_for, 0)  # due soon, and no scheduler serves low
    slow.enqueue_in(timedelta(seconds=1), jobs.sleep_for, 0)  # moved by the slow worker's scheduler
    pid_file = tmp_path / "horse.pid"
    slow.enqueue(jobs.pid_then_sleep, str(pid_file), 600, job_timeout=900)

    wait_for(lambda: not conn.exists(expiring.key), timeout=5, what="the ttl=1 job's hash to expire")
    main = RQWorker(redis_db.url, "default", name="w-main", extra_args=QUICK + ("--worker-ttl", "20"))
    busy = RQWorker(redis_db.url, "slow", name="w-busy", with_scheduler=True,
                    extra_args=QUICK + ("--worker-ttl", "20"))
    exporter = Exporter("--redis-url", redis_db.url)
    queues = ["default", "low", "slow"]
    horse_pid = None
    try:
        finished = FinishedJobRegistry("default", connection=conn)
        failed = FailedJobRegistry("default", connection=conn)
        wait_for(lambda: len(finished.get_job_ids(cleanup=False)) == 4
                 and len(failed.get_job_ids(cleanup=False)) == 3, timeout=30, what="default's jobs to run")
        wait_for(pid_file.exists, timeout=20, what="the slow job to start")
        horse_pid = int(pid_file.read_text())
        wait_for(lambda: slow.count == 1 and not conn.zcard("rq:scheduled:slow"), timeout=15,
                 what="the slow worker's scheduler to enqueue the due job")
        wait_for(lambda: conn.zcount("rq:scheduled:low", 0, time.time() - 1) == 1, timeout=5,
                 what="low's scheduled job to be overdue")

        wait_for(lambda: len(finished.get_expired_job_ids()) == 1 and len(failed.get_expired_job_ids()) == 1,
                 timeout=5, what="the ttl=1 registry entries to expire")

        samples, queue_truth, (live, dead) = consistent(exporter, conn, queues)
        # The scenario itself, so the comparison below is not vacuous:
        assert queue_truth["default"] | {"head_enqueued_at": None} == {
            "queued": 0, "started": 0, "finished": 3, "failed": 2, "deferred": 1, "scheduled": 1,
            "canceled": 0, "abandoned": 0, "overdue": 0, "intermediate": 1, "scheduler": 0,
            "rate_limited": 0, "head_enqueued_at": None}
        assert (queue_truth["low"]["queued"], queue_truth["low"]["canceled"], queue_truth["low"]["overdue"]) \
            == (1, 1, 1)
        assert (queue_truth["slow"]["started"], queue_truth["slow"]["queued"], queue_truth["slow"]["scheduler"]) \
            == (1, 1, 1)
        assert sorted((w.name, w.get_state()) for w in live) == [("w-busy", "busy"), ("w-main", "idle")]
        w_main = next(w for w in live if w.name == "w-main")
        assert (w_main.successful_job_count, w_main.failed_job_count) == (4, 5)  # retries counted
        assert w_main.total_working_time > 0
        assert dead == 0
        assert deferred.get_status(refresh=True) == "deferred" and retried.get_status(refresh=True) == "failed"

        assert samples.value("rq_up") == 1
        assert_queue_metrics(samples, queue_truth)
        assert_worker_metrics(samples, live, dead, queues)

        # SIGKILL the busy worker: its job is abandoned, its hash expires, it stays in rq:workers.
        busy.kill()
        os.kill(horse_pid, 9)  # the work horse outlives its parent; it must not keep running
        wait_for(lambda: not conn.exists("rq:worker:w-busy"), timeout=20, what="w-busy's hash to expire")
        wait_for(lambda: StartedJobRegistry("slow", connection=conn).get_expired_job_ids(), timeout=10,
                 what="the slow job's heartbeat deadline to pass")
        samples, queue_truth, (live, dead) = consistent(exporter, conn, queues)
        assert (queue_truth["slow"]["started"], queue_truth["slow"]["abandoned"]) == (0, 1)
        # by now the ttl=1 entries have expired: still in the registries, no longer counted
        assert (conn.zcard("rq:finished:default"), conn.zcard("rq:failed:default")) == (4, 3)
        assert (queue_truth["default"]["finished"], queue_truth["default"]["failed"]) == (3, 2)
        assert dead == 1 and [w.name for w in live] == ["w-main"]
        assert conn.sismember("rq:workers", "rq:worker:w-busy")
        assert_queue_metrics(samples, queue_truth)
        assert_worker_metrics(samples, live, dead, queues)
        assert samples.value("rq_queue_workers", queue="slow", state="busy") == 0
    finally:
        log = exporter.stop()
        main.stop()
        busy.kill()
        kill_if_alive(horse_pid)
    assert "Traceback" not in log
    assert "skipped" not in log  # RQ's real data is never "malformed"


def test_per_worker_series_off(redis_db):
    conn = redis_db.client()
    Queue("default", connection=conn).enqueue(jobs.sleep_for, 0)
    worker = RQWorker(redis_db.url, "default", name="w-quiet")
    exporter = Exporter("--redis-url", redis_db.url, "--no-per-worker-metrics")
    try:
        wait_for(lambda: conn.zcard("rq:finished:default") == 1, timeout=20, what="the job to finish")
        samples = wait_for(lambda: (s := exporter.scrape()).value("rq_live_workers", state="idle") == 1 and s,
                           timeout=10, what="the worker to be idle")
        assert samples.value("rq_queue_workers", queue="default", state="idle") == 1
        assert not {n for n in samples.names() if n.startswith(("rq_workers", "rq_worker_"))}
        assert all(("name", "w-quiet") not in labels for (_, labels) in samples)
    finally:
        exporter.stop()
        worker.stop()


ENQUEUE_WITH_PREFIX = """
import sys
from rq import Queue
import redis, jobs
q = Queue("pfx", connection=redis.Redis.from_url(sys.argv[1]))
q.enqueue(jobs.sleep_for, 0)
q.enqueue(jobs.fail)
"""


@pytest.mark.skipif(RQ_MAJOR < 3, reason="RQ_KEY_PREFIX is RQ 3.0's; RQ 2.x always uses 'rq'")
def test_rq_3_key_prefix(redis_db):
    env = {"RQ_KEY_PREFIX": "custom"}
    # RQ reads RQ_KEY_PREFIX when imported, so the application side runs in its own processes.
    run([sys.executable, "-c", ENQUEUE_WITH_PREFIX, redis_db.url], env=worker_env(env), check=True,
        cwd=Path(__file__).parent, idle=30)
    conn = redis_db.client()
    assert conn.exists("custom:queues") and not conn.exists("rq:queues")
    worker = RQWorker(redis_db.url, "pfx", name="w-prefixed", env=env)
    custom = Exporter("--redis-url", redis_db.url, "--key-prefix", "custom")
    plain = Exporter("--redis-url", redis_db.url)
    try:
        wait_for(lambda: conn.zcard("custom:finished:pfx") == 1 and conn.zcard("custom:failed:pfx") == 1,
                 timeout=20, what="the prefixed jobs to run")
        samples = wait_for(lambda: (s := custom.scrape()).get_value("rq_live_workers", state="idle") == 1 and s,
                           timeout=10, what="the prefixed worker to be idle")
        assert samples.value("rq_jobs", queue="pfx", status="finished") == 1
        assert samples.value("rq_jobs", queue="pfx", status="failed") == 1
        assert samples.value("rq_queue_workers", queue="pfx", state="idle") == 1
        assert samples[("rq_workers_success_total", frozenset({"name": "w-prefixed", "queues": "pfx"}.items()))] == 1
        other = plain.scrape()
        assert other.value("rq_up") == 1 and not other.series("rq_jobs") and other.value("rq_live_workers",
                                                                                           state="idle") == 0
    finally:
        custom.stop()
        plain.stop()
        worker.stop()


GHOST = "w-ghost"
GHOST_JOB_SECONDS = 13  # outlives ShortTTLWorker's hash (KEY_TTL, 8 s from the job's start) by 5 s


@pytest.mark.slow
def test_hash_recreated_by_an_orphaned_work_horse_is_a_dead_worker(redis_db, tmp_path):
    """SIGKILL a busy worker's main process but not its work horse: the hash expires (a dead worker);
    then the horse finishes its job and RQ's HINCRBYs re-create rq:worker:<name> with the counters
    alone, no TTL, still a member of rq:workers. That hash exists but has no birth, heartbeat or
    state: the worker stays dead, never a live one of state "unknown"."""
    conn = redis_db.client()
    key = f"rq:worker:{GHOST}"
    pid_file = tmp_path / "horse.pid"
    job = Queue("ghost", connection=conn).enqueue(jobs.pid_then_sleep, str(pid_file), GHOST_JOB_SECONDS)
    worker = RQWorker(redis_db.url, "ghost", name=GHOST, extra_args=("-w", "rq_scenario.ShortTTLWorker"))
    exporter = Exporter("--redis-url", redis_db.url)
    horse_pid = None
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=20, what="the job to start")
        horse_pid = int(pid_file.read_text())
        assert horse_pid != worker.process.pid
        assert conn.hget(key, "state") == b"busy" and 0 < conn.ttl(key) <= KEY_TTL

        worker.kill()  # SIGKILL to the main process alone: its work horse lives on, orphaned
        os.kill(horse_pid, 0)  # still running the job
        wait_for(lambda: not conn.exists(key), timeout=KEY_TTL + 5, what=f"{GHOST}'s hash to expire")
        samples = wait_for(lambda: (s := exporter.scrape()).value("rq_dead_workers") == 1 and s, timeout=5,
                           what="the exporter to see the dead worker")
        assert not any(labelled(samples, "rq_live_workers").values()) and not samples.series("rq_workers")
        assert not conn.zcard("rq:finished:ghost"), "the job ended before the hash expired: nothing shown"

        wait_for(lambda: conn.zcard("rq:finished:ghost"), timeout=GHOST_JOB_SECONDS + 10,
                 what="the orphaned horse to finish the job")
        horse_pid = None  # it exits on its own now
        # The transaction that finished the job re-created the hash with its HINCRBYs alone, the same
        # in RQ 2.x and 3.0: no birth, last_heartbeat, state or queues, and no TTL.
        fields = {k.decode(): v.decode() for k, v in conn.hgetall(key).items()}
        assert set(fields) == {"successful_job_count", "total_working_time"} \
            and fields["successful_job_count"] == "1", fields
        assert float(fields["total_working_time"]) == pytest.approx(GHOST_JOB_SECONDS, abs=2)
        assert conn.ttl(key) == -1 and conn.sismember("rq:workers", key)
        assert job.get_status(refresh=True) == "finished"

        samples = exporter.scrape()
        shown = {"dead": samples.value("rq_dead_workers"),
                 "live": {s: n for (s,), n in labelled(samples, "rq_live_workers").items() if n},
                 "rq_workers": labelled(samples, "rq_workers")}
        assert shown == {"dead": 1, "live": {}, "rq_workers": {}}
        assert set(labelled(samples, "rq_live_workers")) >= {(s,) for s in WORKER_STATES}
        assert labelled(samples, "rq_queue_workers") == {("ghost", s): 0 for s in WORKER_STATES}
        assert all(("name", GHOST) not in labels for (_, labels) in samples)
    finally:
        log = exporter.stop()
        worker.kill()
        kill_if_alive(horse_pid)
    assert "Traceback" not in log
