"""rq_job_exceptions_total against a real redis-server, real RQ workers of both layouts and the
real exporter.

- RQ 1.10 (its environment in .venv-rq, its own `rq worker`): the traceback in the job hash's
  ``exc_info``, zlib-compressed;
- the RQ of the test's Python (2.x in .venv, 3.0 in .venv-rq3): in the results stream
  ``rq:results:<id>``, base64 of zlib, and nothing in the hash.
"""

from __future__ import annotations

import os
import signal
import zlib
from pathlib import Path

import pytest
from rq import Queue

from devkit import run, wait_for
from support import TESTS, Exporter, RQWorker, Samples, rq_venv, worker_env

pytestmark = [pytest.mark.redis, pytest.mark.workers]

# (function, arguments, the class its traceback ends with)
FAILING = (
    ("jobs.fail", ("failure on purpose",), "RuntimeError"),
    ("json.loads", ("not json",), "json.decoder.JSONDecodeError"),
    ("operator.truediv", (1, 0), "ZeroDivisionError"),
)


def exceptions(samples: Samples, queue: str) -> dict[str, float]:
    return {dict(labels)["exception"]: v for labels, v in samples.series("rq_job_exceptions_total").items()
            if dict(labels)["queue"] == queue}


def settle(exporter: Exporter, queue: str, failed: int, timeout: float = 30) -> Samples:
    last: list[Samples] = []

    def attempt():
        last[:] = [exporter.scrape()]
        return last[0].get_value("rq_jobs_failed_total", 0, queue=queue) >= failed and last[0]

    try:
        return wait_for(attempt, timeout=timeout, interval=0.25, what=f"{failed} failures counted on {queue}")
    except AssertionError as error:
        raise AssertionError(f"{error}; exceptions: {exceptions(last[0], queue) if last else None}") from None


ENQUEUE = """
import sys
from redis import Redis
from rq import Queue
q = Queue(sys.argv[2], connection=Redis.from_url(sys.argv[1]))
q.enqueue("jobs.sleep_for", 0)
q.enqueue("jobs.fail", "failure on purpose")
q.enqueue("json.loads", "not json")
q.enqueue("operator.truediv", 1, 0)
q.enqueue("operator.truediv", 2, 0)
"""


def test_rq_1_10_keeps_the_traceback_in_the_job_hash(redis_db):
    venv = rq_venv("1.10.1")
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        run([str(venv / "bin" / "python"), "-c", ENQUEUE, redis_db.url, "old"], cwd=TESTS,
            env=worker_env(), check=True, idle=60)
        worker = run([str(venv / "bin" / "rq"), "worker", "--url", redis_db.url, "--burst", "old"],
                     cwd=TESTS, env=worker_env(), capture_output=True, idle=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        r = redis_db.client()
        failed_ids = r.zrange("rq:failed:old", 0, -1)
        assert len(failed_ids) == 4
        # The layout this test is about: zlib in the hash, no results stream.
        assert all(zlib.decompress(r.hget(b"rq:job:" + i, "exc_info")).startswith(b"Traceback") for i in failed_ids)
        assert not any(r.exists(b"rq:results:" + i) for i in failed_ids)
        samples = settle(exporter, "old", 4)
        assert exceptions(samples, "old") == {"RuntimeError": 1, "json.decoder.JSONDecodeError": 1,
                                              "ZeroDivisionError": 2}
        assert samples.value("rq_jobs_failed_total", queue="old") == 4
        assert samples.value("rq_exporter_redis_round_trips") <= 3
    finally:
        exporter.stop()


def test_rq_2_and_3_keep_it_in_the_results_stream(redis_db):
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        q = Queue("new", connection=redis_db.client())
        jobs = [q.enqueue(func, *args) for func, args, _ in FAILING]
        q.enqueue("operator.truediv", 2, 0)
        q.enqueue("jobs.sleep_for", 0)
        assert RQWorker(redis_db.url, "new", burst=True).wait(120) == 0
        r = redis_db.client()
        assert all(r.hget(f"rq:job:{job.id}", "exc_info") in (None, b"") for job in jobs)
        assert all(r.xlen(f"rq:results:{job.id}") == 1 for job in jobs)
        samples = settle(exporter, "new", 4)
        assert exceptions(samples, "new") == {"RuntimeError": 1, "json.decoder.JSONDecodeError": 1,
                                              "ZeroDivisionError": 2}
        assert samples.value("rq_exporter_redis_round_trips") <= 3
    finally:
        exporter.stop()


def test_a_killed_work_horse_has_no_traceback_and_classes_past_the_limit_are_other(redis_db, tmp_path: Path):
    exporter = Exporter("--redis-url", redis_db.url, "--exception-label-limit", "2")
    worker = None
    try:
        exporter.scrape()
        q = Queue("mixed", connection=redis_db.client())
        for func, args, _ in FAILING:
            q.enqueue(func, *args)
        pid_file = tmp_path / "horse.pid"
        q.enqueue("jobs.pid_then_sleep", str(pid_file), 600)
        worker = RQWorker(redis_db.url, "mixed", burst=True)
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=60, what="the work horse's pid")
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # RQ: "Work-horse terminated unexpectedly"
        assert worker.wait(120) == 0
        samples = settle(exporter, "mixed", 4)
        found = exceptions(samples, "mixed")
        # Which two classes come first depends on the order the jobs are read in (one scrape may see all).
        assert found.pop("other") == 1 and found.pop("unknown") == 1, found
        assert len(found) == 2 and set(found) <= {cls for _, _, cls in FAILING} and set(found.values()) == {1}
    finally:
        if worker is not None:
            worker.kill()
        exporter.stop()


def test_malformed_values_are_skipped_and_counted(redis_db):
    """Values no RQ writes, stored where RQ would: the job still counts, as unknown."""
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        q = Queue("bad", connection=redis_db.client())
        jobs = [q.enqueue("jobs.fail") for _ in range(2)]
        assert RQWorker(redis_db.url, "bad", burst=True).wait(120) == 0
        r = redis_db.client()
        # Rewrite the stored tracebacks before the exporter reads them: not base64, not zlib.
        r.xadd(f"rq:results:{jobs[0].id}", {"type": 2, "exc_string": "not base64 !!"})
        r.xadd(f"rq:results:{jobs[1].id}", {"type": 2, "exc_string": "bm90IHpsaWI="})
        samples = settle(exporter, "bad", 2)
        assert exceptions(samples, "bad") == {"unknown": 2}
        assert samples.value("rq_exporter_skipped_total", reason="bad_exc_info") == 2
        assert exporter.scrape().value("rq_up") == 1
    finally:
        exporter.stop()
