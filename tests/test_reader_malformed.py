"""The reader on malformed data: each kind skipped and counted as a problem, the good data beside it
intact, and the exporter scraping through all of it at once.

Malformed data runs on a real redis-server (WRONGTYPE replies, non-UTF-8 keys are Redis' own
behaviour), first through read_snapshot, then through the real exporter process.
"""

from __future__ import annotations

import time

import pytest
from reader_data import add_queue, add_worker, queue, worker

from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.snapshot import Snapshot
from support import Exporter


def reasons(snapshot: Snapshot) -> list[str]:
    return sorted(p.reason for p in snapshot.problems)


def good_data(r) -> None:
    """Data that must stay intact whatever else is broken."""
    add_queue(r, "good", ["g1", "g2"], enqueued_ago=30)
    r.zadd("rq:failed:good", {"gf": time.time() + 1000})
    add_worker(r, "good-worker", "good", state="busy", successful_job_count=3)


def assert_good_data_intact(snapshot: Snapshot) -> None:
    good = queue(snapshot, "good")
    assert (good.queued, good.failed) == (2, 1)
    assert 29 <= good.oldest_job_age <= 40
    w = worker(snapshot, "good-worker")
    assert (w.state, w.successful_jobs, w.queues) == ("busy", 3, ("good",))


def _queues_set_is_a_string(r):
    r.delete("rq:queues")
    r.set("rq:queues", "not a set")


def _registry_is_a_list(r):
    add_queue(r, "bad-registry", ["b1"])
    r.rpush("rq:finished:bad-registry", "x", "y")
    r.zadd("rq:failed:bad-registry", {"f": time.time() + 100})


def _worker_key_is_a_string(r):
    r.sadd("rq:workers", "rq:worker:stringy")
    r.set("rq:worker:stringy", "oops")


def _queue_list_is_a_hash(r):
    r.sadd("rq:queues", "rq:queue:hashy")
    r.hset("rq:queue:hashy", "a", "b")


def _foreign_members(r):
    r.sadd("rq:queues", "junk", "rq:queue:", "other:queue:x")
    r.sadd("rq:workers", "junk", "rq:worker:")


def _garbage_timestamp(r):
    add_queue(r, "garbage-ts", ["gt1"])
    r.hset("rq:job:gt1", mapping={"enqueued_at": "yesterday-ish", "created_at": "2024-13-45T99:99:99Z"})


def _head_job_hash_missing(r):
    add_queue(r, "missing-head", ["mh1", "mh2"])
    r.delete("rq:job:mh1")


def _head_job_is_a_string(r):
    add_queue(r, "stringy-head", ["sh1"])
    r.delete("rq:job:sh1")
    r.set("rq:job:sh1", "x")


def _worker_garbage_fields(r):
    add_worker(r, "garbled", "good", last_heartbeat="not a time", successful_job_count="many",
               failed_job_count="-3", total_working_time="nan")


def _worker_missing_fields(r):
    r.sadd("rq:workers", "rq:worker:sparse")
    r.hset("rq:worker:sparse", mapping={"state": "idle", "birth": "2026-11-22T05:00:00.000000Z"})


def _worker_state_rq_never_writes(r):
    add_worker(r, "odd", "good", state="weird")


def _worker_liveness_is_garbage(r):
    # No timestamp RQ could have written: nothing says this worker ever lived.
    add_worker(r, "garbage-hash", "good", state="busy", birth="not a time", last_heartbeat="nor this")


def _non_utf8_names(r):
    add_queue(r, b"caf\xe9", ["nu1"])
    add_worker(r, b"w\xff\xfe", b"caf\xe9,good", state="idle")


MALFORMED = {
    # case: (writer, reasons it adds, extra check)
    "queues set is a string": (_queues_set_is_a_string, ["wrong_type"],
                               lambda s: s.queues == () and worker(s, "good-worker").state == "busy"),
    "registry is a list": (_registry_is_a_list, ["wrong_type", "wrong_type"],
                           lambda s: (queue(s, "bad-registry").finished, queue(s, "bad-registry").failed,
                                      queue(s, "bad-registry").queued) == (0, 1, 1)),
    "worker key is a string": (_worker_key_is_a_string, ["wrong_type"],
                               lambda s: s.dead_workers == 0 and len(s.workers) == 1),
    "queue list is a hash": (_queue_list_is_a_hash, ["wrong_type", "wrong_type"],
                             lambda s: queue(s, "hashy").queued == 0),
    "foreign set members": (_foreign_members, ["bad_queue_key"] * 3 + ["bad_worker_key"] * 2,
                            lambda s: s.dead_workers == 0 and len(s.queues) == 1),
    "garbage timestamps": (_garbage_timestamp, ["bad_timestamp"],
                           lambda s: queue(s, "garbage-ts").oldest_job_age is None
                           and queue(s, "garbage-ts").queued == 1),
    "head job hash missing": (_head_job_hash_missing, ["missing_job"],
                              lambda s: queue(s, "missing-head").oldest_job_age is None
                              and queue(s, "missing-head").queued == 2),
    "head job is a string": (_head_job_is_a_string, ["wrong_type"],
                             lambda s: queue(s, "stringy-head").oldest_job_age is None),
    "worker fields are garbage": (_worker_garbage_fields, ["bad_worker_field"] * 4,
                                  lambda s: (worker(s, "garbled").state, worker(s, "garbled").last_heartbeat,
                                             worker(s, "garbled").successful_jobs,
                                             worker(s, "garbled").failed_jobs,
                                             worker(s, "garbled").working_seconds) == ("idle", None, None, None, None)),
    "worker fields missing": (_worker_missing_fields, [],
                              lambda s: (worker(s, "sparse").queues, worker(s, "sparse").successful_jobs,
                                         worker(s, "sparse").last_heartbeat) == ((), 0, None)),
    "worker state RQ never writes": (_worker_state_rq_never_writes, ["bad_worker_state"],
                                     lambda s: worker(s, "odd").state == "unknown"),
    "worker liveness fields are garbage": (_worker_liveness_is_garbage, ["bad_worker_field"] * 2,
                                           lambda s: [w.name for w in s.workers] == ["good-worker"]
                                           and s.dead_workers == 0),
    "non-UTF-8 names": (_non_utf8_names, [],
                        lambda s: queue(s, "caf\\xe9").queued == 1 and queue(s, "caf\\xe9").oldest_job_age > 0
                        and worker(s, "w\\xff\\xfe").queues == ("caf\\xe9", "good")),
}


@pytest.mark.redis
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_data_is_skipped_and_counted(redis_db, case):
    r = redis_db.client()
    good_data(r)
    writer, expected_reasons, check = MALFORMED[case]
    writer(r)
    snapshot = read_snapshot(r, Keys("rq"))
    assert reasons(snapshot) == sorted(expected_reasons), snapshot.problems
    assert check(snapshot)
    if case != "queues set is a string":
        assert_good_data_intact(snapshot)
    else:
        assert worker(snapshot, "good-worker").successful_jobs == 3


@pytest.mark.redis
def test_exporter_scrapes_through_all_malformed_data_at_once(redis_db):
    r = redis_db.client()
    good_data(r)
    for case, (writer, _, _) in MALFORMED.items():
        if case != "queues set is a string":
            writer(r)
    exporter = Exporter("--redis-url", redis_db.url)
    try:
        first = exporter.scrape()
        second = exporter.scrape()
    finally:
        log = exporter.stop()
    for samples in (first, second):
        assert samples.value("rq_up") == 1
        assert samples.value("rq_jobs", queue="good", status="queued") == 2
        assert samples.value("rq_jobs", queue="good", status="failed") == 1
        assert 29 <= samples.value("rq_queue_oldest_job_age_seconds", queue="good") <= 45
        assert samples.value("rq_jobs", queue="caf\\xe9", status="queued") == 1
        assert samples.value("rq_queue_workers", queue="caf\\xe9", state="idle") == 1
        assert samples.value("rq_dead_workers") == 0
        # a state RQ never writes is "unknown"; a hash without a usable timestamp is no live worker
        assert samples.value("rq_live_workers", state="unknown") == 1
        assert samples.value("rq_live_workers", state="busy") == 1
        assert samples.get_value("rq_live_workers", state="weird") is None
        # left out for that scrape, not reported as 0
        assert samples.get_value("rq_queue_oldest_job_age_seconds", queue="missing-head") is None
        assert samples.get_value("rq_queue_oldest_job_age_seconds", queue="garbage-ts") is None
    skipped = {dict(labels)["reason"]: v for labels, v in first.series("rq_exporter_skipped_total").items()}
    assert skipped == {"wrong_type": 6, "bad_queue_key": 3, "bad_worker_key": 2, "bad_timestamp": 1,
                       "missing_job": 1, "bad_worker_field": 6,
                       "bad_worker_state": 1}
    again = {dict(labels)["reason"]: v for labels, v in second.series("rq_exporter_skipped_total").items()}
    assert again == {reason: 2 * n for reason, n in skipped.items()}
    # logged once per problem, not once per scrape
    assert log.count("skipped rq:job:mh1 (missing_job)") == 1
    assert log.count("(bad_timestamp)") == 1
    assert "Traceback" not in log


def test_an_error_reply_to_a_command_whose_first_argument_is_no_key_is_a_problem_not_a_crash():
    # SCAN's first argument is its cursor, an int: refused (an ACL without +scan), it is still
    # skipped and counted like any error reply.
    from redis.exceptions import ResponseError

    from rq_exporter_ng.reader import _Reading

    reading = _Reading(now=0.0)
    reading.on_error(("SCAN", 0, "MATCH", "rq:scheduler_instance:*"), ResponseError("NOPERM no permission"))
    (problem,) = reading.problems
    assert problem.reason == "error_reply" and problem.key == "0" and "SCAN: NOPERM" in problem.detail
