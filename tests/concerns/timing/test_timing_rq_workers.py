"""Job timing against a real redis-server, real `rq worker` processes and the real exporter.

Bursts too large for a worker to produce quickly (1,000 jobs ending in one second, a burst
past the cap) are written the way RQ writes them: the job hash (RQ's own timestamp format and
serializer) and the registry entry scored ``current_timestamp() + ttl``.
"""

from __future__ import annotations

import time
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from rq import Queue
from rq.serializers import DefaultSerializer
from rq.utils import current_timestamp, utcformat

from support import Exporter, RQWorker, Samples

pytestmark = pytest.mark.redis


def run_jobs(url: str, *queues: str) -> None:
    assert RQWorker(url, *queues, burst=True).wait(60) == 0


def settle(exporter: Exporter, done, tries: int = 20) -> Samples:
    """Scrape until ``done(samples)`` (discovering a TTL can take a scrape or two)."""
    samples = exporter.scrape()
    for _ in range(tries):
        if done(samples):
            break
        time.sleep(0.25)
        samples = exporter.scrape()
    return samples


def counts(samples: Samples, queue: str) -> dict[str, float]:
    timed = sum(v for labels, v in samples.series("rq_job_duration_seconds_count").items()
                if dict(labels)["queue"] == queue)
    return {
        "finished": samples.value("rq_jobs_finished_total", queue=queue),
        "failed": samples.value("rq_jobs_failed_total", queue=queue),
        "not_timed": samples.value("rq_exporter_jobs_not_timed_total", queue=queue),
        "timed": timed,
    }


def write_finished(r, queue: str, job_ids: list[str], ttl: int = 500, run: float = 0.2, wait: float = 0.1) -> None:
    """Jobs that ended now, stored as RQ's worker stores them (one pipeline, like its own)."""
    ended = datetime.now(timezone.utc)
    started = ended - timedelta(seconds=run)
    score = current_timestamp() + ttl
    pipe = r.pipeline()
    pipe.sadd("rq:queues", f"rq:queue:{queue}")
    for job_id in job_ids:
        key = f"rq:job:{job_id}"
        pipe.hset(key, mapping={
            "status": "finished", "origin": queue, "description": "jobs.sleep_for(0.2)",
            "created_at": utcformat(started - timedelta(seconds=wait)),
            "enqueued_at": utcformat(started - timedelta(seconds=wait)),
            "started_at": utcformat(started), "ended_at": utcformat(ended),
            "data": zlib.compress(DefaultSerializer.dumps(("jobs.sleep_for", None, (run,), {}))),
        })
        pipe.expire(key, ttl)
        pipe.zadd(f"rq:finished:{queue}", {job_id: score})
    pipe.execute()


@pytest.mark.workers
def test_known_sleep_times_land_in_their_buckets(redis_db):
    exporter = Exporter("--redis-url", redis_db.url, "--timing-buckets", "0.25,1,2.5,10")
    try:
        exporter.scrape()
        q = Queue("timed", connection=redis_db.client())
        for seconds in (0.0, 0.0, 0.5, 0.5, 1.3):
            q.enqueue("jobs.sleep_for", seconds)
        q.enqueue("jobs.fail")
        run_jobs(redis_db.url, "timed")
        samples = settle(exporter, lambda s: counts(s, "timed")["timed"] == 6)
    finally:
        exporter.stop()

    def bucket(status: str, le: str) -> float:
        return samples.value("rq_job_duration_seconds_bucket", queue="timed", status=status, le=le)

    assert [bucket("finished", le) for le in ("0.25", "1.0", "2.5", "10.0", "+Inf")] == [2, 4, 5, 5, 5]
    assert [bucket("failed", le) for le in ("0.25", "+Inf")] == [1, 1]
    assert 2.3 <= samples.value("rq_job_duration_seconds_sum", queue="timed", status="finished") < 2.8
    assert samples.value("rq_job_wait_seconds_count", queue="timed") == 6
    assert samples.value("rq_job_wait_seconds_sum", queue="timed") >= 0
    assert counts(samples, "timed") == {"finished": 5, "failed": 1, "not_timed": 0, "timed": 6}
    assert samples.value("rq_exporter_redis_round_trips") <= 3
    assert not any("func" in dict(labels) for labels in samples.series("rq_job_duration_seconds_count"))


def _mixed_wave(q: Queue) -> None:
    for _ in range(2):
        q.enqueue("jobs.sleep_for", 0, result_ttl=30)
        q.enqueue("jobs.sleep_for", 0)  # RQ's default result_ttl, 500
        q.enqueue("jobs.sleep_for", 0, result_ttl=3600)
        q.enqueue("jobs.sleep_for", 0, result_ttl=-1)  # kept forever: score +inf
        q.enqueue("jobs.sleep_for", 0, result_ttl=0)  # never reaches the finished registry
        q.enqueue("jobs.fail", failure_ttl=120)
        q.enqueue("jobs.fail")  # RQ's default failure_ttl, one year
        q.enqueue("jobs.fail", failure_ttl=-1)  # kept forever: score -1


@pytest.mark.workers
@pytest.mark.slow
def test_mixed_ttls_in_one_queue_every_job_counted_once(redis_db):
    r = redis_db.client()
    q = Queue("mixed", connection=r)
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        expected = {"finished": 0, "failed": 0, "not_timed": 0, "timed": 0}
        for _ in range(2):
            _mixed_wave(q)
            run_jobs(redis_db.url, "mixed")
            # result_ttl=0 jobs are not counted; kept-forever jobs are counted, untimed
            expected = {"finished": expected["finished"] + 8, "failed": expected["failed"] + 6,
                        "not_timed": expected["not_timed"] + 4, "timed": expected["timed"] + 10}
            samples = settle(exporter, lambda s, want=expected: counts(s, "mixed") == want)
            assert counts(samples, "mixed") == expected
            for _ in range(3):  # overlapping windows and later scrapes do not count anything again
                time.sleep(0.3)
                assert counts(exporter.scrape(), "mixed") == expected
    finally:
        exporter.stop()


@pytest.mark.workers
def test_a_thousand_jobs_ending_within_one_second(redis_db):
    r = redis_db.client()
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        # Written in two parts around a scrape, both inside one second when the clock allows,
        # plus real jobs of real workers in the same queue.
        write_finished(r, "burst", [f"burst-a{i:04}" for i in range(400)])
        exporter.scrape()
        write_finished(r, "burst", [f"burst-b{i:04}" for i in range(600)])
        q = Queue("burst", connection=r)
        for _ in range(3):
            q.enqueue("jobs.sleep_for", 0.0)
        run_jobs(redis_db.url, "burst")
        samples = settle(exporter, lambda s: counts(s, "burst")["finished"] >= 1003)
        assert counts(samples, "burst") == {"finished": 1003, "failed": 0, "not_timed": 0, "timed": 1003}
        assert samples.value("rq_exporter_redis_round_trips") <= 3
        # The same job ending again later (a re-run) is a new end: counted again.
        time.sleep(1.05)
        write_finished(r, "burst", ["burst-a0000"])
        # A registry entry whose hash is gone is skipped and counted, not a job.
        r.zadd("rq:finished:burst", {"gone": current_timestamp() + 500})
        samples = settle(exporter, lambda s: counts(s, "burst")["finished"] >= 1004)
        assert counts(samples, "burst")["finished"] == 1004
        assert samples.value("rq_exporter_skipped_total", reason="missing_job") == 1
        assert counts(exporter.scrape(), "burst")["finished"] == 1004
    finally:
        exporter.stop()


def test_a_burst_larger_than_the_cap_is_counted_not_all_timed(redis_db):
    r = redis_db.client()
    exporter = Exporter("--redis-url", redis_db.url, "--timing-max-jobs-per-scrape", "50")
    try:
        exporter.scrape()
        write_finished(r, "capped", [f"capped-{i:03}" for i in range(300)])
        first = exporter.scrape()
        assert counts(first, "capped") == {"finished": 300, "failed": 0, "not_timed": 250, "timed": 50}
        time.sleep(0.3)
        assert counts(exporter.scrape(), "capped") == counts(first, "capped")
    finally:
        exporter.stop()


@pytest.mark.workers
@pytest.mark.slow
def test_exporter_restart_counts_from_its_first_scrape(redis_db):
    url = redis_db.url
    q = Queue("restart", connection=redis_db.client())
    first = Exporter("--redis-url", url)
    try:
        first.scrape()
        for _ in range(3):
            q.enqueue("jobs.sleep_for", 0.0)
        run_jobs(url, "restart")
        assert counts(settle(first, lambda s: counts(s, "restart")["finished"] == 3), "restart")["finished"] == 3
    finally:
        first.stop()
    for _ in range(2):  # while no exporter runs
        q.enqueue("jobs.sleep_for", 0.0)
    run_jobs(url, "restart")
    time.sleep(1.05)  # they ended in an earlier second than the new exporter's first scrape
    second = Exporter("--redis-url", url)
    try:
        # The registry holds 5 finished jobs: history, not counted by the new process.
        assert counts(second.scrape(), "restart") == {"finished": 0, "failed": 0, "not_timed": 0, "timed": 0}
        for _ in range(4):
            q.enqueue("jobs.sleep_for", 0.0)
        run_jobs(url, "restart")
        samples = settle(second, lambda s: counts(s, "restart")["finished"] == 4)
        assert counts(samples, "restart") == {"finished": 4, "failed": 0, "not_timed": 0, "timed": 4}
    finally:
        second.stop()


@pytest.mark.workers
def test_func_label_folds_functions_past_its_limit(redis_db):
    q = Queue("funcs", connection=redis_db.client())
    exporter = Exporter("--redis-url", redis_db.url, "--timing-func-label", "--timing-func-limit", "1")
    try:
        exporter.scrape()
        q.enqueue("jobs.sleep_for", 0.0)
        q.enqueue("jobs.sleep_for", 0.0)
        run_jobs(redis_db.url, "funcs")
        settle(exporter, lambda s: counts(s, "funcs")["timed"] == 2)
        q.enqueue("jobs.fail")
        run_jobs(redis_db.url, "funcs")
        samples = settle(exporter, lambda s: counts(s, "funcs")["timed"] == 3)
    except KeyError as error:
        # Once, in a loaded CI run (RQ 3.0 suite, session 18): a scrape with rq_up 0, its read
        # failing at once. The exporter's log says why, should it happen again.
        raise AssertionError(f"{error!r}; the exporter logged:\n{exporter.stop()}") from error
    finally:
        exporter.stop()
    durations = {(dict(labels)["status"], dict(labels)["func"]): v
                 for labels, v in samples.series("rq_job_duration_seconds_count").items()}
    assert durations == {("finished", "jobs.sleep_for"): 2, ("failed", "other"): 1}
    waits = {dict(labels)["func"]: v for labels, v in samples.series("rq_job_wait_seconds_count").items()}
    assert waits == {"jobs.sleep_for": 2, "other": 1}


@pytest.mark.workers
def test_counters_survive_redis_outages_and_a_wiped_registry(own_redis):
    q = Queue("outage", connection=own_redis.client())
    exporter = Exporter("--redis-url", own_redis.url, "--redis-read-timeout", "0.5", "--redis-connect-timeout", "0.5")
    try:
        exporter.scrape()
        for _ in range(3):
            q.enqueue("jobs.sleep_for", 0.0)
        q.enqueue("jobs.fail")
        run_jobs(own_redis.url, "outage")
        expected = {"finished": 3, "failed": 1, "not_timed": 0, "timed": 4}
        assert counts(settle(exporter, lambda s: counts(s, "outage") == expected), "outage") == expected
        own_redis.stop()
        down = exporter.scrape()
        assert down.value("rq_up") == 0
        assert counts(down, "outage") == expected  # the exporter's own state, still served
        own_redis.start()  # empty: no persistence
        up = exporter.scrape()
        assert up.value("rq_up") == 1
        assert counts(up, "outage") == expected  # counters never go down
    finally:
        log = exporter.stop()
    assert "Traceback" not in log


@pytest.mark.workers
def test_retries_count_once_and_a_requeued_job_counts_again(redis_db):
    from rq import Retry
    from rq.registry import FailedJobRegistry

    q = Queue("rerun", connection=redis_db.client())
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        exporter.scrape()
        job = q.enqueue("jobs.fail", retry=Retry(max=1))  # two attempts, one final failure
        run_jobs(redis_db.url, "rerun")
        once = {"finished": 0, "failed": 1, "not_timed": 0, "timed": 1}
        assert counts(settle(exporter, lambda s: counts(s, "rerun") == once), "rerun") == once
        time.sleep(1.05)  # the next end lands in another second: a new registry score
        FailedJobRegistry(queue=q).requeue(job.id)
        run_jobs(redis_db.url, "rerun")
        twice = {"finished": 0, "failed": 2, "not_timed": 0, "timed": 2}
        samples = settle(exporter, lambda s: counts(s, "rerun") == twice)
        assert counts(samples, "rerun") == twice
        assert counts(exporter.scrape(), "rerun") == twice
    finally:
        exporter.stop()


def test_no_job_timing_exports_none_of_it(redis_db):
    exporter = Exporter("--redis-url", redis_db.url, "--no-job-timing")
    try:
        write_finished(redis_db.client(), "off", ["off-1"])
        names = exporter.scrape().names()
    finally:
        exporter.stop()
    assert "rq_up" in names
    assert not {n for n in names if n.startswith(("rq_job_", "rq_jobs_finished", "rq_jobs_failed",
                                                    "rq_exporter_jobs_not_timed"))}
