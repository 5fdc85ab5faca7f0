"""The reader: Redis -> Snapshot.

Pure logic (prefixes, filters, expiry arithmetic, worker-only queues) runs on fakeredis.
Malformed data runs on a real redis-server (WRONGTYPE replies, non-UTF-8 keys are Redis' own
behaviour), first through read_snapshot, then through the real exporter process.
"""

from __future__ import annotations

import time

import fakeredis
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devkit import rq_time
from rq_exporter_ng import reader
from rq_exporter_ng.connection import connect
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.loading import load
from rq_exporter_ng.queue_reads import FULL
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import QueueState, Snapshot
from support import Exporter


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


def reasons(snapshot: Snapshot) -> list[str]:
    return sorted(p.reason for p in snapshot.problems)


@pytest.fixture
def fake():
    return fakeredis.FakeRedis()


# --- pure logic on fakeredis -------------------------------------------------------------------------

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


# --- malformed data on a real redis-server ----------------------------------------------------------

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


def test_an_error_reply_to_a_command_whose_first_argument_is_no_key_is_a_problem_not_a_crash():
    # SCAN's first argument is its cursor, an int: refused (an ACL without +scan), it is still
    # skipped and counted like any error reply.
    from redis.exceptions import ResponseError

    from rq_exporter_ng.reader import _Reading

    reading = _Reading(now=0.0)
    reading.on_error(("SCAN", 0, "MATCH", "rq:scheduler_instance:*"), ResponseError("NOPERM no permission"))
    (problem,) = reading.problems
    assert problem.reason == "error_reply" and problem.key == "0" and "SCAN: NOPERM" in problem.detail


@hsettings(max_examples=300, deadline=None)
@given(replies=st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)), min_size=13, max_size=13),
       head=st.one_of(st.none(), st.binary(max_size=3)), active=st.booleans(),
       age=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)))
def test_a_queue_state_is_the_keyword_form(replies, head, active, age):
    # _queue_state builds QueueState positionally; the plain keyword form says what each field is.
    queue = reader._Queue(b"q", "q", FULL)
    queue.replies = [*replies[:2], head, *replies[3:]]
    queue.scheduler_active = active
    oldest = age if head is not None else 0.0  # as the reader hands it: None when the head job was unreadable
    r = [reply or 0 for reply in queue.replies]
    expected = QueueState(
        name="q", queued=r[0], intermediate=r[1], started=max(0, r[3] - r[4]), abandoned=r[4],
        finished=max(0, r[5] - r[6]), failed=r[7] + r[8], failed_forever=replies[7], deferred=r[9],
        scheduled=r[10], canceled=r[11], overdue_scheduled=r[12], scheduler_active=active,
        oldest_job_age=oldest)
    assert reader._queue_state(queue, oldest) == expected


@pytest.mark.redis
def test_the_queues_and_head_jobs_read_in_small_runs_and_groups_give_the_same_snapshot(redis_db, monkeypatch):
    # The queues' runs and the head jobs' groups are made and handled as the batch is sent:
    # a snapshot read in runs of 3 queues and groups of 2 head jobs (many of each, and a last short
    # one) equals the one read with one run and one group, errors and problems included (the
    # problems in another order: a group's error replies come before its ages' problems).
    client = redis_db.client()
    for i in range(23):
        add_queue(client, f"q{i:02}", [f"j{i}-{k}" for k in range(i % 3)], enqueued_ago=10 + i)
    add_queue(client, "gone", ["nohash"])
    client.delete(b"rq:job:nohash")
    client.set(b"rq:job:j5-0", b"not a hash")  # an error reply among the head jobs
    add_worker(client, "w1", "q01,elsewhere")
    exporter = connect(Settings(redis_url=redis_db.url))  # the raw path, as the exporter reads
    keys = Keys("rq")
    monkeypatch.setattr(reader.time, "time", lambda: 1_800_000_000.0)
    monkeypatch.setattr(reader, "QUEUES_PER_RUN", 3)
    monkeypatch.setattr(reader, "HEADS_PER_GROUP", 2)
    small = read_snapshot(exporter, keys)
    monkeypatch.setattr(reader, "QUEUES_PER_RUN", 1000)
    monkeypatch.setattr(reader, "HEADS_PER_GROUP", 1000)
    one = read_snapshot(exporter, keys)
    assert small.queues == one.queues and small.workers == one.workers
    assert sorted(small.problems, key=repr) == sorted(one.problems, key=repr)
    assert small == Snapshot(**{**vars(one), "problems": small.problems})
    assert sorted(p.reason for p in one.problems) == ["missing_job", "wrong_type"]
    assert sum(q.oldest_job_age is not None and q.oldest_job_age > 0 for q in one.queues) == 14


@hsettings(max_examples=200, deadline=None)
@given(enqueued=st.one_of(st.none(), st.just(b""), st.binary(max_size=30),
                          st.floats(0, 2e9).map(lambda t: rq_time(t).encode())),
       created=st.one_of(st.none(), st.floats(0, 2e9).map(lambda t: rq_time(t).encode()), st.just(b"bad")))
def test_a_head_jobs_age_read_from_the_kept_timestamps_is_the_parsed_one(enqueued, created):
    # _age looks the head job's timestamps up in _HEAD_STAMPS, kept between scrapes: the first time
    # (parsed) and the next (kept) give what parse.timestamp gives, and the same problems.
    from rq_exporter_ng import parse

    def plain() -> tuple:
        reading = reader._Reading(now=2e9)
        if enqueued is None and created is None:
            return None, ["missing_job"]
        try:
            when = parse.timestamp(enqueued) or parse.timestamp(created)
        except ValueError:
            return None, ["bad_timestamp"]
        return (None, ["bad_timestamp"]) if when is None else (max(0.0, reading.now - when), [])

    for _ in range(2):
        reading = reader._Reading(now=2e9)
        age = reader._age([enqueued, created], b"job", Keys("rq"), reading)
        assert (age, [p.reason for p in reading.problems]) == plain()


def test_kept_head_timestamps_are_emptied_past_the_limit():
    from rq_exporter_ng import parse
    from rq_exporter_ng.kept import Kept

    stamps = Kept(parse.timestamp, 3)
    for i in range(10):
        assert stamps[rq_time(1e9 + i).encode()] == pytest.approx(1e9 + i)
    assert len(stamps) <= 3
