"""Round 3's finished jobs' HMGET answers read from their bytes (replies.py, hmget.py), against
hiredis' reading of the same bytes: the same answers, or hiredis reads them.

The unit tests read bytes written to one end of a real socket pair; the batch tests run against
the session's real redis-server, each way (bytes, hiredis, redis-py's pipeline)."""

from __future__ import annotations

import random
import socket
from datetime import datetime, timedelta, timezone

import hiredis
import pytest
import redis

from rq_exporter_ng import batch as batch_module
from rq_exporter_ng import redis_internals
from rq_exporter_ng.batch import Batch, Packed
from rq_exporter_ng.concerns.timing import hmget
from rq_exporter_ng.concerns.timing.hmget import FRAME, FRAMED_FIELDS, Compacted, HashTemplate, read_frames
from rq_exporter_ng.concerns.timing.reads import FRAMED_RUN, HASH_GROUP, hash_ranges
from rq_exporter_ng.concerns.timing.records import Candidate
from rq_exporter_ng.concerns.timing.rules import read_compact
from rq_exporter_ng.connection import PROTOCOL
from rq_exporter_ng.replies import NOT_YET, Replies

T0 = datetime(2026, 12, 6, 20, 0, tzinfo=timezone.utc)


def rq_stamp(moment: datetime) -> bytes:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()  # RQ's utcformat


def typical(rng: random.Random, start: datetime = T0) -> list:
    ended = start + timedelta(seconds=rng.uniform(0, 3600))
    started = ended - timedelta(seconds=rng.uniform(0, 30))
    return [rq_stamp(ended), rq_stamp(started), rq_stamp(started - timedelta(seconds=rng.uniform(0, 5))), None, None]


def resp(answer: list | bytes) -> bytes:
    """An HMGET answer in RESP2, as Redis writes it; bytes: already RESP (an error, say)."""
    if isinstance(answer, bytes):
        return answer
    return b"*%d\r\n" % len(answer) + b"".join(
        b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value) for value in answer)


def by_hiredis(data: bytes, count: int) -> list:
    reader = hiredis.Reader(replyError=lambda message: RuntimeError(message), notEnoughData=None)
    reader.feed(data)
    replies = [reader.gets() for _ in range(count)]
    assert reader.gets() is None  # exactly count replies
    return replies


def test_the_typical_form_is_rqs_answer_with_each_digit_as_0():
    answer = resp(typical(random.Random(0)))
    assert len(answer) == len(FRAME)
    assert answer.translate(bytes.maketrans(b"123456789", b"000000000")) == FRAME
    assert FRAMED_FIELDS == (b"ended_at", b"started_at", b"enqueued_at", b"result_ttl", b"failure_ttl")


@pytest.mark.parametrize("seed", range(5))
def test_typical_answers_read_from_their_bytes_as_hiredis_and_read_compact_read_them(seed):
    rng = random.Random(seed)
    # Seconds not met yet among them (another year each seed): learned as they come.
    answers = [typical(rng, T0.replace(year=2026 + seed)) for _ in range(rng.randint(1, 1200))]
    data = b"".join(map(resp, answers))
    read = read_frames(data)
    assert type(read) is Compacted
    assert read == read_compact(by_hiredis(data, len(answers)))
    assert all(type(a) is tuple and len(a) == 3 for a in read)


@pytest.mark.parametrize("change", [
    lambda a: a[:1] + b"7" + a[2:],  # *7: another number of fields, the same length here
    lambda a: a[:5] + b"9" + a[6:],  # $97: another length
    lambda a: a[:14] + b"13" + a[16:],  # month 13 (the first stamp starts at byte 9)
    lambda a: a[:20] + b"25" + a[22:],  # hour 25
], ids=["fields", "length", "month", "hour"])
def test_bytes_in_the_form_that_are_not_rqs_answers_are_left_to_hiredis(change):
    rng = random.Random(1)
    answers = [resp(typical(rng)) for _ in range(20)]
    answers[7] = change(answers[7])
    assert answers[7].translate(bytes.maketrans(b"123456789", b"000000000")) == FRAME
    assert read_frames(b"".join(answers)) is None


class _Group:
    """A group of ``count`` replies in hmget's form (replies.Framed)."""

    frame = FRAME

    def read_frames(self, data: bytes):
        return read_frames(data)


def _replies(framed: bool = True) -> tuple[Replies, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)  # a wait for bytes that never come fails the test instead of hanging it
    return Replies(ours, lambda message: RuntimeError(message), framed=framed), theirs


@pytest.mark.parametrize("piece", [1, 7, 116, 5000])
def test_a_group_is_read_from_its_bytes_as_they_arrive_in_pieces(piece):
    rng = random.Random(2)
    answers = [typical(rng) for _ in range(300)]
    data = b"".join(map(resp, answers))
    replies, theirs = _replies()
    sent = 0
    while True:
        got = replies.take_frames(_Group(), len(answers), wait=False)
        if got is not NOT_YET:
            break
        assert sent < len(data)
        theirs.sendall(data[sent:sent + piece])
        sent += piece
        replies.poll()
    assert got == read_compact(by_hiredis(data, len(answers)))
    assert replies.raw is not None and len(replies.raw) == replies.raw_at  # all taken


@pytest.mark.parametrize("odd", [
    b"*5\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n",  # the hash is gone: shorter than the form
    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    [b"2026-12-06T20:00:00.000000+00:00", b"2026-12-06T20:00:00.000000Z", None, None, None],  # another form
    [b"2026-12-06T20:00:01.000000Z", b"2026-12-06T20:00:00.000000Z", b"2026-12-06T19:59:00.000000Z", b"500", None],
    [b"2026-12-06T20:00:01.000000Z", None, b"2026-12-06T19:59:00.000000Z", None, None],
])
@pytest.mark.parametrize("where", [0, 150, 299])
def test_an_odd_answer_leaves_the_group_and_the_rest_to_hiredis_without_waiting_for_bytes_that_never_come(
        odd, where):
    rng = random.Random(3)
    answers: list = [typical(rng) for _ in range(300)]
    answers[where] = odd
    data = b"".join(map(resp, answers))
    after = [typical(rng) for _ in range(10)]  # a later group, read by hiredis too
    replies, theirs = _replies()
    theirs.sendall(data + b"".join(map(resp, after)))
    # Waiting: everything Redis sends is here, and no more comes (a socket timeout fails the test).
    assert replies.take_frames(_Group(), len(answers), wait=True) is None
    replies.parse_the_rest()
    assert not replies.framed
    expected = by_hiredis(data, len(answers))
    got = replies.take(len(answers))
    assert [type(r) for r in got] == [type(r) for r in expected]
    assert [r for r in got if not isinstance(r, Exception)] == [r for r in expected if not isinstance(r, Exception)]
    assert replies.take(len(after)) == after


def test_without_waiting_a_group_that_may_still_be_in_the_form_is_not_yet_one_that_cannot_is_none():
    rng = random.Random(4)
    data = b"".join(resp(typical(rng)) for _ in range(10))
    replies, theirs = _replies()
    theirs.sendall(data[:500])
    replies.poll()
    assert replies.take_frames(_Group(), 10, wait=False) is NOT_YET
    theirs.sendall(data[500:4 * len(FRAME)] + b"-ERR no\r\n")  # the fifth answer is an error
    replies.poll()
    assert replies.take_frames(_Group(), 10, wait=False) is None


# -- the batch: real Redis, real sockets ---------------------------------------------------------

class _Registry:
    def __init__(self, status: str) -> None:
        self.status = status


def _jobs(client: redis.Redis, rng: random.Random, n: int, prefix: str) -> list[bytes]:
    ids = []
    for i in range(n):
        job_id = f"{prefix}{i:05d}".encode()
        ended, started, enqueued, _, _ = typical(rng)
        client.hset(b"rq:job:" + job_id, mapping={b"ended_at": ended, b"started_at": started,
                                                   b"enqueued_at": enqueued, b"status": b"finished"})
        ids.append(job_id)
    return ids


def _run_hash_groups(client: redis.Redis, groups: list, how: str) -> list:
    """Each group's handler input, in order: Compacted as it is, hiredis' answers compacted."""
    got: list = []
    batch = Batch(lambda command, error: None)
    for group in groups:
        batch.add_group(lambda replies, group=group: got.append(
            (group, "bytes" if type(replies) is Compacted else "replies",
             list(replies) if type(replies) is Compacted else read_compact(replies))), group, quiet=True)
    if how == "pipeline":
        batch._run_pipeline(client)
    else:
        batch.run(client)
    assert [g for g, _, _ in got] == groups  # every group, in order
    return [(kind, answers) for _, kind, answers in got]


def _scenario(client: redis.Redis) -> list[Packed]:
    rng = random.Random(5)
    typical_ids = _jobs(client, rng, 2500, "t")
    client.hset(b"rq:job:ttl", mapping={b"ended_at": b"2026-12-06T20:00:01.000000Z", b"result_ttl": b"500",
                                       b"started_at": b"2026-12-06T20:00:00.000000Z",
                                       b"enqueued_at": b"2026-12-06T19:00:00.000000Z"})
    client.set(b"rq:job:wrongtype", b"x")
    registries = [_Registry("finished"), _Registry("failed")]
    template = HashTemplate(b"rq:job:", FRAMED_FIELDS, registries)  # type: ignore[arg-type]

    def group(ids: list[bytes], finished: bool = True) -> Packed:
        return template.group([Candidate(0 if finished else 1, i, 1.0, 60) for i in ids], finished)

    return [
        group(typical_ids[:1000]),  # read from its bytes
        group(typical_ids[1000:1100], finished=False),  # a failed registry's: hiredis, on the batch's connection
        group(typical_ids[1100:2000]),  # bytes again
        group([*typical_ids[2000:2100], b"ttl", b"gone", b"wrongtype", *typical_ids[2100:2200]]),  # odd: hiredis
        group(typical_ids[2200:2500]),  # after an odd group: hiredis
    ]


@pytest.mark.redis
def test_framed_groups_read_on_their_own_connection_give_what_hiredis_and_the_pipeline_give(redis_db):
    client = redis_db.client(protocol=PROTOCOL)
    groups = _scenario(client)
    by_bytes = _run_hash_groups(client, groups, "raw")
    assert [kind for kind, _ in by_bytes] == ["bytes", "replies", "bytes", "replies", "replies"]
    piped = _run_hash_groups(client, groups, "pipeline")
    assert [answers for _, answers in by_bytes] == [answers for _, answers in piped]
    odd = by_bytes[3][1]
    assert odd[100][3] == b"500" and odd[101] == (None, None, None) and odd[102] is None  # ttl, gone, wrong type
    # Both connections back in the pool, neither left with replies unread.
    pool = client.connection_pool
    assert len(pool._in_use_connections) == 0 and len(pool._available_connections) == 2
    assert _run_hash_groups(client, groups, "raw") == by_bytes


@pytest.mark.redis
def test_a_pool_with_one_connection_sends_the_framed_groups_with_the_rest(redis_db):
    full = redis_db.client(protocol=PROTOCOL)
    groups = _scenario(full)
    one = redis.Redis(host=full.connection_pool.connection_kwargs["host"],
                      port=full.connection_pool.connection_kwargs["port"], protocol=PROTOCOL, max_connections=1)
    got = _run_hash_groups(one, groups, "raw")
    assert [kind for kind, _ in got] == ["replies"] * len(groups)
    assert [answers for _, answers in got] == [answers for _, answers in _run_hash_groups(full, groups, "pipeline")]


def test_the_frame_of_hmget_follows_its_fields():
    # With the func label the answers hold ``data`` (any length): never read from their bytes.
    template = HashTemplate(b"rq:job:", (*FRAMED_FIELDS, b"data"), [_Registry("finished")])  # type: ignore[list-item]
    assert template.group([Candidate(0, b"a", 1.0, 60)], finished=True).frame == b""
    template = HashTemplate(b"rq:job:", FRAMED_FIELDS, [_Registry("finished")])  # type: ignore[list-item]
    assert template.group([Candidate(0, b"a", 1.0, 60)], finished=True).frame == hmget.FRAME
    assert template.group([Candidate(0, b"a", 1.0, 60)], finished=False).frame == b""


def test_a_scrapes_hmgets_are_grouped_by_size_and_a_big_finished_registry_is_read_from_its_bytes():
    # 20 busy queues: each finished registry's run its own groups; its few failed jobs with the
    # next queue's until a big finished run comes.
    runs = [(status == "finished", 750 if status == "finished" else 37) for _ in range(20)
            for status in ("finished", "failed")]
    got = list(hash_ranges(runs))
    assert [framed for *_, framed in got].count(True) == 20
    assert all(end - start == 750 for start, end, framed in got if framed)
    # 1,000 queues with a few new jobs each: groups of HASH_GROUP, as many as before framing.
    small = [(status == "finished", 15 if status == "finished" else 1) for _ in range(1000)
             for status in ("finished", "failed")]
    assert [(end - start, framed) for start, end, framed in hash_ranges(small)] == [(HASH_GROUP, False)] * 16
    assert list(hash_ranges([])) == []
    for case in (runs, small, [(True, FRAMED_RUN - 1), (True, FRAMED_RUN), (False, 5_000), (True, 2_500)],
                 [(True, 300)] * 7 + [(False, 3)] * 400 + [(True, 150), (False, 1)]):
        ranges = list(hash_ranges(case))
        # every candidate once, in order, in groups of at most HASH_GROUP
        assert [r[0] for r in ranges] == [0, *(r[1] for r in ranges[:-1])]
        assert ranges[-1][1] == sum(n for _, n in case)
        assert all(0 < end - start <= HASH_GROUP for start, end, _ in ranges)
    assert [framed for *_, framed in hash_ranges([(True, FRAMED_RUN - 1), (True, FRAMED_RUN)])] == [False, True]
    # Big finished runs one after another share groups, as a mixed run's registries do.
    assert list(hash_ranges([(True, 600), (True, 600), (False, 5), (True, 700)])) == [
        (0, 1000, True), (1000, 1200, True), (1200, 1205, False), (1205, 1905, True)]


@pytest.mark.redis
def test_a_pool_that_refused_a_second_connection_is_not_asked_again_for_a_while(redis_db, monkeypatch):
    full = redis_db.client(protocol=PROTOCOL)
    groups = _scenario(full)
    one = redis.Redis(host=full.connection_pool.connection_kwargs["host"],
                      port=full.connection_pool.connection_kwargs["port"], protocol=PROTOCOL, max_connections=1)
    asked = []
    borrow = redis_internals.borrow
    monkeypatch.setattr(redis_internals, "borrow", lambda pool: asked.append(pool) or borrow(pool))
    _run_hash_groups(one, groups, "raw")
    _run_hash_groups(one, groups, "raw")
    assert len(asked) == 3  # the batch's connection twice, the second connection once
    assert one.connection_pool in batch_module._REFUSED
