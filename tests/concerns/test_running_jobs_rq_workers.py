"""Running jobs and RQ 3.0's rate limits against real `rq worker` processes and the real exporter.

Runs under RQ 2.x (.venv) and RQ 3.0 (.venv-rq3): RQ 2.x keeps the worker hash's current_job,
3.0 drops it, and both write the started registry as ``<job id>:<execution id>``. The
truth is RQ's own: the job's ``started_at`` as Job.fetch reads it, the rate limit registries
as rq.rate_limit reads them. tests/test_rq_versions.py covers RQ 0.13 to 1.16.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timezone

import jobs
import pytest
import rq
from rq import Queue
from rq.job import Job

from devkit import wait_for
from support import Exporter, RQWorker, Samples, kill_if_alive

pytestmark = pytest.mark.workers

RQ_MAJOR = int(rq.__version__.split(".")[0])


def current_job_seconds(samples: Samples, worker: str, queues: str) -> float:
    return samples[("rq_worker_current_job_seconds", frozenset({"name": worker, "queues": queues}.items()))]


def test_a_long_running_job_is_seen_per_queue_and_per_worker(redis_db, tmp_path):
    conn = redis_db.client()
    Queue("idle", connection=conn).enqueue(jobs.sleep_for, 0)  # a queue with no worker: nothing runs
    pid_file = tmp_path / "horse.pid"
    job = Queue("long", connection=conn).enqueue(jobs.pid_then_sleep, str(pid_file), 600, job_timeout=900)
    worker = RQWorker(redis_db.url, "long", name="w-long")
    exporter = Exporter("--redis-url", redis_db.url)
    horse = None
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the long job to start")
        horse = int(pid_file.read_text())
        wait_for(lambda: conn.hget("rq:worker:w-long", "state") == b"busy", timeout=10, what="a busy worker")
        started = Job.fetch(job.id, connection=conn).started_at.replace(tzinfo=timezone.utc).timestamp()
        time.sleep(2)
        samples = exporter.scrape()
        run_time = time.time() - started
        first = samples.value("rq_queue_longest_running_job_seconds", queue="long")
        assert abs(first - run_time) < 1.5, (first, run_time)
        assert samples.value("rq_queue_longest_running_job_seconds", queue="idle") == 0
        assert current_job_seconds(samples, "w-long", "long") == pytest.approx(first, abs=0.01)
        # The function, read from the job's data without unpickling: RQ's own func_name.
        assert samples.value("rq_queue_longest_running_job_by_func_seconds", queue="long",
                             func=job.func_name) == pytest.approx(first, abs=0.01)
        # The layout these numbers came from, so that the test says which one it exercised.
        member = conn.zrange("rq:wip:long", 0, -1)[0].decode()
        assert member.startswith(f"{job.id}:")  # RQ >= 2.0: <job id>:<execution id>
        assert (conn.hget("rq:worker:w-long", "current_job") is None) == (RQ_MAJOR >= 3)

        time.sleep(1.5)
        later = exporter.scrape().value("rq_queue_longest_running_job_seconds", queue="long")
        assert later >= first + 1, (first, later)

        os.kill(horse, signal.SIGKILL)  # the job ends (failed); the worker lives on, idle
        samples = wait_for(lambda: (s := exporter.scrape()).value("rq_jobs", queue="long", status="failed") == 1
                           and s, timeout=30, what="the killed job to be failed")
        assert samples.value("rq_queue_longest_running_job_seconds", queue="long") == 0
        assert not samples.series("rq_queue_longest_running_job_by_func_seconds")
        assert current_job_seconds(samples, "w-long", "long") == 0
        assert samples.value("rq_exporter_redis_round_trips") == 3
    finally:
        log = exporter.stop()
        worker.kill()
        kill_if_alive(horse)
    assert "skipped" not in log and "Traceback" not in log, log


def rate_limited_truth(conn) -> dict[str, int]:
    """RQ's own view: each waiting job of each limit key, counted for its origin queue."""
    from rq.rate_limit import RateLimitRegistry
    counts: dict[str, int] = {}
    for registry in RateLimitRegistry.all(conn):
        for job in Job.fetch_many(registry.get_rate_limited_job_ids(), connection=conn):
            if job is not None and job.get_status(refresh=False) == "rate_limited":
                counts[job.origin] = counts.get(job.origin, 0) + 1
    return counts


@pytest.mark.skipif(RQ_MAJOR < 3, reason="rate limits are RQ 3.0's")
def test_rq_3_rate_limited_jobs_count_for_their_queue(redis_db):
    from rq import RateLimit
    conn = redis_db.client()
    api, mail, sms = (Queue(n, connection=conn) for n in ("api", "mail", "sms"))
    for _ in range(5):
        api.enqueue(jobs.sleep_for, 0, rate_limit=RateLimit("api", 1))
    for queue in (mail, sms, sms):  # one key shared by two queues
        queue.enqueue(jobs.sleep_for, 0, rate_limit=RateLimit("notify", 1))
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        samples = exporter.scrape()
        assert rate_limited_truth(conn) == {"api": 4, "sms": 2}
        seen = {q: (samples.value("rq_jobs", queue=q, status="queued"),
                    samples.value("rq_jobs", queue=q, status="rate_limited")) for q in ("api", "mail", "sms")}
        assert seen == {"api": (1, 4), "mail": (1, 0), "sms": (0, 2)}
        assert samples.value("rq_exporter_redis_round_trips") == 3

        # A worker runs them one at a time: each finished job frees the slot for the next.
        RQWorker(redis_db.url, "api", "mail", "sms", burst=True).wait(60)
        samples = exporter.scrape()
        assert rate_limited_truth(conn) == {}
        for q, done in (("api", 5), ("mail", 1), ("sms", 2)):
            assert samples.value("rq_jobs", queue=q, status="rate_limited") == 0
            assert samples.value("rq_jobs", queue=q, status="finished") == done
    finally:
        log = exporter.stop()
    assert "skipped" not in log and "Traceback" not in log, log
