"""The reader's fast paths equal their plain forms: _queue_state and QueueState's keyword form, a
snapshot read in small runs and groups and one read at once, a head job's age from the kept
timestamps and the one parsed anew; and the kept timestamps stay within their limit.

Hypothesis draws the replies and timestamps; the runs and groups are read from a real redis-server.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from reader_data import add_queue, add_worker

from devkit import rq_time
from rq_exporter_ng import reader
from rq_exporter_ng.connection import connect
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.queue_reads import FULL
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import QueueState, Snapshot


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
