"""RQ 0.x's failed queue (rq_exporter_ng/concerns/failed_queue.py) on data laid out as RQ 0.13 writes it.

The layout is read from RQ 0.13's FailedQueue.quarantine: the job id RPUSHed onto
rq:queue:failed (a member of rq:queues), the hash with status failed, its origin, ended_at and
exc_info. tests/test_rq_versions.py runs real RQ 0.13 workers against the exporter.
"""

from __future__ import annotations

import fakeredis

from devkit import rq_time
from rq_exporter_ng.concern import Given
from rq_exporter_ng.concerns import failed_queue
from rq_exporter_ng.concerns.failed_queue import FailedQueue, FailedQueueOptions, FailedQueueTrack, fold
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot

T0 = 1_800_000_000.0


def fail(r, job_id: str, origin: str, when: float = T0) -> None:
    r.sadd("rq:queues", "rq:queue:failed", f"rq:queue:{origin}")
    r.hset(f"rq:job:{job_id}", mapping={"status": "failed", "origin": origin, "enqueued_at": rq_time(when - 3),
                                        "started_at": rq_time(when - 2), "ended_at": rq_time(when),
                                        "exc_info": b"x\x9c\x03\x00\x00\x00\x00\x01"})
    r.rpush("rq:queue:failed", job_id)


def reads(track: FailedQueueTrack):
    """One scrape's reads of the concern that remembers in ``track``."""
    concern = FailedQueue(FailedQueueOptions(lambda name: True), Keys("rq"))
    concern.track = track
    return concern.reads(Given())


def finish(scan, snapshot):
    return scan.result(Given(snapshot=snapshot))


def scrape(r, track: FailedQueueTrack):
    scan = reads(track)
    snapshot = read_snapshot(r, Keys("rq"), extras=(scan,))
    result = finish(scan, snapshot)
    return fold(snapshot, result), result


def test_failed_jobs_count_for_their_origin_and_no_queue_is_named_failed():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    fail(r, "a", "orders")
    fail(r, "b", "orders")
    fail(r, "c", "emails")
    r.rpush("rq:queue:orders", "queued-1")
    snapshot, result = scrape(r, track)
    queues = {q.name: q for q in snapshot.queues}
    assert "failed" not in queues
    assert (queues["orders"].failed, queues["emails"].failed, queues["orders"].queued) == (2, 1, 1)
    assert result.ended == ()  # the first scrape's jobs are history


def test_jobs_failing_after_the_first_scrape_are_new_failures_once():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    fail(r, "a", "orders")
    scrape(r, track)
    fail(r, "b", "orders", T0 + 10)
    fail(r, "c", "emails", T0 + 11)
    _, result = scrape(r, track)
    assert sorted((e.queue, e.member, e.ended) for e in result.ended) == [
        ("emails", b"c", T0 + 11), ("orders", b"b", T0 + 10)]
    _, again = scrape(r, track)
    assert again.ended == ()
    assert again.counts == {"orders": 2, "emails": 1}


def test_a_requeue_is_seen_and_the_list_read_again():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    for i in range(5):
        fail(r, f"j{i}", "orders" if i % 2 else "emails")
    scrape(r, track)
    r.lrem("rq:queue:failed", 1, "j1")  # FailedQueue.requeue: LREM, then the job goes back to its queue
    fail(r, "j9", "orders", T0 + 5)
    snapshot, _ = scrape(r, track)  # the job known last moved: the whole list is read again
    _, result = scrape(r, track)  # and the job it did not know is read
    assert result.counts == {"orders": 2, "emails": 3}
    assert [e.member for e in result.ended] == [b"j9"]
    assert {q.name: q.failed for q in snapshot.queues}["emails"] == 3


def test_a_queue_named_failed_that_holds_queued_jobs_stays_a_queue():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    r.sadd("rq:queues", "rq:queue:failed")
    r.hset("rq:job:q1", mapping={"status": "queued", "origin": "failed", "enqueued_at": rq_time(T0)})
    r.rpush("rq:queue:failed", "q1")
    snapshot, result = scrape(r, track)
    assert not result.legacy
    assert {q.name: q.queued for q in snapshot.queues} == {"failed": 1}
    # Decided: no more reads of that list.
    scan = reads(track)
    snapshot = read_snapshot(r, Keys("rq"), extras=(scan,))
    assert finish(scan, snapshot) is None


def test_a_job_without_its_hash_is_counted_as_unknown_and_reported():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    fail(r, "a", "orders")
    r.rpush("rq:queue:failed", "gone")
    snapshot, result = scrape(r, track)
    assert result.counts == {"orders": 1, "unknown": 1}
    assert [p.reason for p in snapshot.problems] == ["missing_job"]


def test_the_queue_filters_apply_to_the_origins():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    fail(r, "a", "orders")
    fail(r, "b", "tmp-1")
    scan = reads(track)
    wants = lambda name: not name.startswith("tmp")  # noqa: E731
    snapshot = read_snapshot(r, Keys("rq"), wants, extras=(scan,))
    folded = failed_queue.fold(snapshot, finish(scan, snapshot), wants)
    assert {q.name: q.failed for q in folded.queues} == {"orders": 1}


def test_at_most_max_new_hashes_a_scrape():
    r, track = fakeredis.FakeRedis(), FailedQueueTrack()
    old, failed_queue.MAX_NEW = failed_queue.MAX_NEW, 3
    try:
        for i in range(7):
            fail(r, f"j{i}", "orders")
        counts = [scrape(r, track)[1].counts for _ in range(3)]
    finally:
        failed_queue.MAX_NEW = old
    assert counts == [{"orders": 3}, {"orders": 6}, {"orders": 7}]


def test_no_series_of_the_exporter_names_a_queue_failed():
    from rq_exporter_ng.collector import RQCollector
    from rq_exporter_ng.settings import Settings

    r = fakeredis.FakeRedis()
    fail(r, "a", "orders")
    collector = RQCollector(r, Settings())
    for scrape_number in range(3):
        if scrape_number == 2:
            fail(r, "b", "orders")
        families = list(collector.collect())
        queues = {s.labels.get("queue") for f in families for s in f.samples}
        assert "failed" not in queues
    by_name = {f.name: f for f in families}
    assert [s.value for s in by_name["rq_jobs_failed"].samples
            if s.labels["queue"] == "orders" and s.name.endswith("_total")] == [1]
