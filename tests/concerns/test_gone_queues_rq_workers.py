"""Series that go when their queue goes (rq_exporter_ng/gone.py): a real queue, run by a real RQ
worker, deleted with RQ's own ``Queue.delete()``; the exporter with ``--gone-queue-seconds 2``
drops its counters, histograms and exception classes from a real scrape, and keeps those of a
queue that stays.
"""

from __future__ import annotations

import time

import pytest
from rq import Queue

from devkit import wait_for
from support import Exporter, RQWorker, Samples

pytestmark = [pytest.mark.redis, pytest.mark.workers]

GONE_AFTER = 2  # seconds (default 3600)
PER_QUEUE = ("rq_jobs_finished_total", "rq_jobs_failed_total", "rq_exporter_jobs_not_timed_total",
             "rq_job_duration_seconds_count", "rq_job_wait_seconds_count", "rq_job_exceptions_total",
             "rq_job_retries_total")


def queues_of(samples: Samples) -> dict[str, set[str]]:
    """Metric -> the queues it has a series of."""
    return {name: {dict(labels)["queue"] for labels in samples.series(name)} for name in PER_QUEUE}


def test_the_series_of_a_deleted_queue_go_after_the_setting_and_the_others_stay(redis_db):
    conn = redis_db.client()
    exporter = Exporter("--redis-url", redis_db.url, "--gone-queue-seconds", str(GONE_AFTER))
    try:
        exporter.scrape()
        for name in ("gone", "kept"):
            q = Queue(name, connection=conn)
            q.enqueue("jobs.sleep_for", 0)
            q.enqueue("jobs.fail", "failure on purpose")
        assert RQWorker(redis_db.url, "gone", "kept", burst=True).wait(120) == 0
        counted = wait_for(lambda: (s := exporter.scrape()).get_value("rq_jobs_failed_total", 0, queue="gone") == 1
                           and s.get_value("rq_jobs_failed_total", 0, queue="kept") == 1 and s,
                           timeout=30, interval=0.25, what="both queues' jobs counted")
        assert all(seen >= {"gone", "kept"} for seen in queues_of(counted).values()), queues_of(counted)

        Queue("gone", connection=conn).delete(delete_jobs=True)
        deleted = time.monotonic()
        samples = exporter.scrape()  # no key now: the clock starts
        assert samples.value("rq_jobs_finished_total", queue="gone") == 1  # still there, within the time
        samples = wait_for(lambda: (s := exporter.scrape()).get_value("rq_jobs_finished_total", None,
                                                                       queue="gone") is None and s,
                           timeout=30, interval=0.5, what="the deleted queue's series to go")
        assert time.monotonic() - deleted >= GONE_AFTER - 0.5
        seen = queues_of(samples)
        assert all("gone" not in queues for queues in seen.values()), seen
        assert all("kept" in queues for queues in seen.values()), seen
        assert samples.value("rq_jobs_failed_total", queue="kept") == 1
    finally:
        exporter.stop()


def test_0_keeps_them_for_ever(redis_db):
    conn = redis_db.client()
    exporter = Exporter("--redis-url", redis_db.url, "--gone-queue-seconds", "0")
    try:
        exporter.scrape()
        Queue("gone", connection=conn).enqueue("jobs.sleep_for", 0)
        assert RQWorker(redis_db.url, "gone", burst=True).wait(120) == 0
        wait_for(lambda: exporter.scrape().get_value("rq_jobs_finished_total", 0, queue="gone") == 1,
                 timeout=30, interval=0.25, what="the job counted")
        Queue("gone", connection=conn).delete(delete_jobs=True)
        time.sleep(1.5)
        exporter.scrape()
        assert exporter.scrape().value("rq_jobs_finished_total", queue="gone") == 1
    finally:
        exporter.stop()
