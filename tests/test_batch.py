"""Batch's raw hiredis path hands out exactly what redis-py's pipeline would, against a real Redis,
and leaves no half-read connection behind when Redis is slow or gone."""

from __future__ import annotations

import os
import sys
import time
import weakref

import hiredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devkit import run
from rq_exporter_ng.batch import Batch, Packed, _raw_capable
from rq_exporter_ng.connection import PROTOCOL, connect
from rq_exporter_ng.settings import Settings
from support import Exporter

pytestmark = pytest.mark.redis

COMMANDS = [
    ("LLEN", b"list"),
    ("LLEN", b"zset"),  # WRONGTYPE: an error reply in the middle
    ("LINDEX", b"list", 0),
    ("LINDEX", b"nothing", 0),
    ("SMEMBERS", b"set"),  # redis-py turns this one into a set
    ("HMGET", b"hash", b"a", b"b", b"missing"),
    ("ZCOUNT", b"zset", 0, 150),
    ("ZCOUNT", b"zset", "-inf", "(200"),
    ("ZRANGEBYSCORE", b"zset", "-inf", "+inf", "WITHSCORES"),
    ("EXISTS", b"hash"),
    ("TIME",),
    ("NOSUCHCOMMAND", b"x"),
    ("ZCARD", b"\xffnon-utf8"),
]


def _run(client: redis.Redis, raw: bool) -> list:
    delivered: list = []
    batch = Batch(lambda command, error: delivered.append(("error", command, type(error), str(error))))
    for command in COMMANDS:
        batch.add(lambda reply, command=command: delivered.append(("reply", command, reply)), *command)
    if raw:
        assert _raw_capable(client)
        batch.run(client)
    else:
        batch._run_pipeline(client)
    return delivered


def _fill(client: redis.Redis) -> None:
    client.rpush("list", "a", "b")
    client.zadd("zset", {"x": 100, "y": 200, "z": -1})
    client.sadd("set", "m1", "m2")
    client.hset("hash", mapping={"a": "1", "b": "2"})
    client.zadd(b"\xffnon-utf8", {"q": 1})


def test_raw_replies_equal_the_pipeline_replies(redis_db):
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    raw, piped = _run(client, raw=True), _run(client, raw=False)
    time_index = next(i for i, entry in enumerate(raw) if entry[1] == ("TIME",))
    assert isinstance(raw[time_index][2], list) and isinstance(piped[time_index][2], list)
    raw[time_index] = piped[time_index] = None  # the clock moved between the two
    assert raw == piped
    kinds = [entry[0] for entry in raw if entry]
    assert kinds.count("error") == 2
    smembers = [entry[2] for entry in raw if entry and entry[1] == ("SMEMBERS", b"set")]
    assert sorted(smembers[0]) == [b"m1", b"m2"]  # as Redis sent it: redis-py's callbacks are not applied


def _run_groups(client: redis.Redis, raw: bool) -> list:
    errors: list = []
    groups: list = []
    batch = Batch(lambda command, error: errors.append(command))
    batch.add_group(groups.append, COMMANDS[:6])
    batch.add(lambda reply: groups.append(["alone", reply]), "LLEN", b"list")
    batch.add_group(groups.append, COMMANDS[6:], quiet=True)
    batch.run(client) if raw else batch._run_pipeline(client)
    return [errors, groups]


def test_groups_get_their_replies_in_order_with_none_for_errors_reported_unless_quiet(redis_db):
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    raw, piped = _run_groups(client, raw=True), _run_groups(client, raw=False)
    for result in (raw, piped):
        result[1][2][4] = None  # TIME: the clock moved between the two
    assert raw == piped
    errors, (first, alone, second) = raw
    assert errors == [("LLEN", b"zset")]  # NOSUCHCOMMAND is in the quiet group
    first[4] = sorted(first[4])
    assert first == [2, None, b"a", None, [b"m1", b"m2"], [b"1", b"2", None]]
    assert alone == ["alone", 2]
    assert second[:4] == [1, 2, [b"z", b"-1", b"x", b"100", b"y", b"200"], 1]
    assert second[5:] == [None, 1]


def test_a_timeout_mid_batch_raises_and_the_next_batch_reads_cleanly(own_redis):
    client = own_redis.client(socket_timeout=0.3, protocol=PROTOCOL)
    _fill(client)
    batch = Batch(lambda command, error: None)
    batch.add(lambda reply: None, "LLEN", b"list")
    batch.add(lambda reply: None, "BLPOP", b"empty", 2)  # the server holds this reply back for 2 s
    batch.add(lambda reply: None, "LLEN", b"list")
    with pytest.raises(redis.TimeoutError):
        batch.run(client)
    # The late BLPOP reply must not be read as the answer to the next batch's first command.
    assert _run(client, raw=True)[0] == ("reply", ("LLEN", b"list"), 2)


def test_a_stopped_redis_is_a_connection_error(own_redis):
    # As the exporter connects (rq_exporter_ng.connection): no retries past the failure.
    client = own_redis.client(socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0), protocol=PROTOCOL)
    _run(client, raw=True)
    own_redis.process.kill()  # gone at once, as in a crash
    own_redis.process.wait()
    with pytest.raises(redis.ConnectionError):
        _run(client, raw=True)


def test_the_exporters_own_client_takes_the_raw_path(redis_db):
    # redis-py 8 asks for RESP3 unless told; the exporter pins RESP2 (every Redis RQ runs on has it).
    client = connect(Settings(redis_url=redis_db.url))
    assert _raw_capable(client)
    assert b"resp=2" in client.execute_command("CLIENT", "INFO")


def test_without_hiredis_the_exporter_reads_the_same_through_the_pipeline(redis_db, tmp_path):
    # hiredis is required, but an install where it cannot be imported (a platform without a
    # wheel, say) must still work: batch.py falls back to redis-py's pipeline.
    (tmp_path / "hiredis.py").write_text("raise ImportError('hiredis blocked by the test')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    probe = run([sys.executable, "-c", "import rq_exporter_ng.batch as b, redis.utils as u; "
                 "print(b.hiredis, u.HIREDIS_AVAILABLE)"], env={**os.environ, **env},
                capture_output=True, text=True, idle=30)
    assert probe.stdout.split() == ["None", "False"], probe.stderr
    client = redis_db.client()
    client.sadd("rq:queues", "rq:queue:default", "rq:queue:low")
    client.rpush("rq:queue:default", "a", "b")
    client.zadd("rq:finished:low", {"done": 2e9})
    client.hset("rq:worker:w1", mapping={"state": "idle", "queues": "default", "last_heartbeat": ""})
    client.sadd("rq:workers", "rq:worker:w1")
    fast, plain = Exporter("--redis-url", redis_db.url), Exporter("--redis-url", redis_db.url, env=env)
    try:
        got = [exporter.scrape() for exporter in (fast, plain)]
    finally:
        fast.stop()
        plain.stop()
    for name in ("rq_up", "rq_jobs", "rq_queue_workers", "rq_live_workers", "rq_workers"):
        assert got[0].series(name) == got[1].series(name), name
    assert got[1].value("rq_jobs", queue="default", status="queued") == 2


def test_replies_split_across_many_reads_are_handed_out_the_same(redis_db, monkeypatch):
    # Every recv ends mid-reply (7 bytes at a time): the replies read ahead are sliced out per part.
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    piped = _run_groups(client, raw=False)
    monkeypatch.setattr("rq_exporter_ng.replies._READ_SIZE", 7)
    raw = _run_groups(client, raw=True)
    for result in (raw, piped):
        result[1][2][4] = None  # TIME
    assert raw == piped


@pytest.mark.parametrize("feed", [5, 64, 1 << 14])
def test_a_read_fed_to_hiredis_in_pieces_hands_out_the_same_replies(redis_db, monkeypatch, feed):
    # A whole read fed in pieces (_FEED), each piece's replies taken before the next; pieces that end
    # mid-reply, mid-line or on a reply's last byte: what the pipeline hands out.
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    piped = _run_groups(client, raw=False)
    monkeypatch.setattr("rq_exporter_ng.replies._FEED", feed)
    raw = _run_groups(client, raw=True)
    for result in (raw, piped):
        result[1][2][4] = None  # TIME
    assert raw == piped


@pytest.mark.parametrize("feed", [1000, 1 << 14])
def test_large_replies_across_many_pieces_and_hiredis_moving_its_buffer(redis_db, monkeypatch, feed):
    # Replies larger than a piece (a 100 kB string, a 3,000-member list), each spread over many
    # pieces, between runs of small ones that make hiredis move its buffer (past its first kB),
    # in reads of the whole 128 kB: what the pipeline hands out.
    client = redis_db.client(protocol=PROTOCOL)
    client.set("big", b"\xfe" * 100_000)
    client.rpush("long", *[b"member-%05d" % i for i in range(3_000)])
    client.zadd("zset", {b"m%d" % i: i for i in range(50)})
    commands = [("GET", "big"), *[("ZSCORE", "zset", b"m%d" % i) for i in range(50)], ("LRANGE", "long", 0, -1),
                ("GET", "missing"), ("LLEN", "zset")] * 4  # an error reply among them

    def run(raw: bool) -> list:
        errors: list = []
        groups: list = []
        batch = Batch(lambda command, error: errors.append(command))
        batch.add_group(groups.append, commands)
        batch.run(client) if raw else batch._run_pipeline(client)
        return [errors, groups]

    piped = run(raw=False)
    monkeypatch.setattr("rq_exporter_ng.replies._FEED", feed)
    raw = run(raw=True)
    assert raw == piped
    errors, [replies] = raw
    assert errors == [("LLEN", "zset")] * 4
    assert replies[0] == b"\xfe" * 100_000 and len(replies[51]) == 3_000 and replies[53] is None


class _Packed(Packed):
    """A packed group whose commands are built from a function."""

    def __init__(self, commands: list[tuple], build) -> None:
        super().__init__()
        self.bytes, self.size, self.build = b"".join(map(hiredis.pack_command, commands)), len(commands), build

    def packed(self) -> bytes:
        return self.bytes

    def commands(self) -> list[tuple]:
        return self.build()

    def __len__(self) -> int:
        return self.size


def _run_packed(client: redis.Redis, raw: bool) -> list:
    errors: list = []
    groups: list = []
    built: list = []

    def commands() -> list[tuple]:
        built.append(True)
        return COMMANDS[:6]

    batch = Batch(lambda command, error: errors.append(command))
    batch.add_groups([(groups.append, _Packed(COMMANDS[:6], commands)), (groups.append, COMMANDS[6:8])])
    batch.run(client) if raw else batch._run_pipeline(client)
    return [errors, groups, built]


def test_a_packed_group_is_sent_as_packed_and_its_commands_built_only_when_asked(redis_db):
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    raw, piped = _run_packed(client, raw=True), _run_packed(client, raw=False)
    for result in (raw, piped):
        result[1][0][4] = sorted(result[1][0][4])  # SMEMBERS: a set's order
    # The same replies as the plain group; the error reply names its command, which only then is built.
    assert raw[:2] == piped[:2] == [[("LLEN", b"zset")],
                                    [[2, None, b"a", None, [b"m1", b"m2"], [b"1", b"2", None]], [1, 2]]]
    assert raw[2] == [True] and piped[2] == [True]  # built once each (the pipeline sends the commands)
    quiet: list = []
    batch = Batch(lambda command, error: quiet.append(command))
    batch.add_groups([(quiet.append, _Packed([("LLEN", b"list")],
                                             lambda: pytest.fail("built without an error reply")))])
    batch.run(client)
    assert quiet == [[2]]


def test_replies_come_back_to_their_handlers_while_the_rest_is_sent_and_each_part_goes_once_handed_out(redis_db):
    """Each chunk sent, the replies already there are handed out: a round's handlers and commands
    are not all held until the last is sent (at 10,000 queues they were the scrape's peak)."""
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    events: list[tuple[str, int]] = []

    class Handler:
        def __init__(self, i: int) -> None:
            self.i = i

        def __call__(self, replies: list) -> None:
            events.append(("handled", self.i))
            assert replies == [2, None] if self.i % 2 else [2, 1]

    def groups():
        for i in range(6000):
            if i % 1000 == 0:
                events.append(("built", i))
                time.sleep(0.05)  # Redis answers the chunks sent meanwhile
            handler = Handler(i)
            weakref.finalize(handler, events.append, ("gone", i))
            yield handler, [("LLEN", b"list"), ("LLEN", b"zset") if i % 2 else ("EXISTS", b"hash")]

    errors: list = []
    batch = Batch(lambda command, error: errors.append(command))
    batch.add_groups(groups())
    batch.run(client)
    handled = [i for kind, i in events if kind == "handled"]
    assert handled == list(range(6000))  # in order, each once
    assert len(errors) == 3000
    # Groups were handed their replies, and let go, before the last ones were built.
    assert events.index(("handled", 0)) < events.index(("gone", 0)) < events.index(("built", 5000))
    assert sum(kind == "gone" for kind, _ in events) == 6000


@pytest.mark.parametrize("raw", [True, False])
def test_parts_added_later_are_sent_in_their_place_and_get_their_replies(redis_db, raw):
    # add_later: what build() adds is sent where the later part stands, after the parts before it
    # (whose replies may already be handed out) and before the parts after it, exactly as if it
    # had been added there at once.
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    order: list = []

    def later_batch() -> Batch:
        batch = Batch(lambda command, error: order.append(("error", command)))
        batch.add_groups((lambda replies, i=i: order.append((i, replies)), [("LLEN", b"list")] * 3) for i in range(400))

        def build() -> None:
            order.append("built")
            batch.add(lambda reply: order.append(("later", reply)), "LLEN", b"zset")  # an error reply
            batch.add_later(lambda: batch.add(lambda reply: order.append(("nested", reply)), "EXISTS", b"hash"))

        batch.add_later(build)
        batch.add(lambda reply: order.append(("after", reply)), "ZCARD", b"zset")
        return batch

    batch = later_batch()
    batch.run(client) if raw else batch._run_pipeline(client)
    replies = [item for item in order if item != "built"]
    assert replies == [(i, [2, 2, 2]) for i in range(400)] + [("error", ("LLEN", b"zset")), ("nested", 1), ("after", 3)]
    assert order.count("built") == 1
    assert not batch


@pytest.mark.parametrize("raw", [True, False])
def test_parts_added_last_come_after_every_other_part_of_the_round(redis_db, raw):
    # add_last: what build() adds is sent after every other part, those that add_later builds add
    # (and parts added after the add_last) included; several add_last in the order they came, and
    # one that adds another add_last runs it after the rest.
    client = redis_db.client(protocol=PROTOCOL)
    _fill(client)
    order: list = []
    batch = Batch(lambda command, error: order.append(("error", command)))
    batch.add(lambda reply: order.append(("first", reply)), "LLEN", b"list")
    batch.add_last(lambda: (batch.add(lambda reply: order.append(("last 1", reply)), "ZCARD", b"zset"),
                            batch.add_last(lambda: batch.add(lambda reply: order.append(("last 3", reply)), "PING"))))
    batch.add_last(lambda: batch.add_groups([(lambda replies: order.append(("last 2", replies)),
                                              [("EXISTS", b"hash")] * 2)]))
    batch.add_later(lambda: batch.add(lambda reply: order.append(("later", reply)), "EXISTS", b"hash"))
    batch.add(lambda reply: order.append(("after", reply)), "LLEN", b"list")
    assert batch
    batch.run(client) if raw else batch._run_pipeline(client)
    assert order == [("first", 2), ("later", 1), ("after", 2), ("last 1", 3), ("last 2", [1, 1]),
                     ("last 3", b"PONG")]
    assert not batch
    alone = Batch(lambda command, error: None)
    alone.add_last(lambda: alone.add(lambda reply: order.append(("alone", reply)), "PING"))
    assert alone  # a round of add_last alone runs (reader.py: ``if third``)
    alone.run(client) if raw else alone._run_pipeline(client)
    assert order[-1] == ("alone", b"PONG")


@pytest.mark.parametrize("raw", [True, False])
def test_sent_says_whether_every_command_is_sent_when_a_handler_runs(redis_db, raw):
    """``sent`` is False while commands are still to be sent (a part added later is built then)
    and True from the last chunk on, never False again (job timing judges ahead only then:
    reads.py)."""
    client = redis_db.client(protocol=PROTOCOL)
    batch = Batch(lambda command, error: None)
    seen: list[bool] = []
    for _ in range(3_000):  # three chunks
        batch.add(lambda reply: seen.append(batch.sent), "PING")
    built: list[bool] = []
    batch.add_later(lambda: (built.append(batch.sent), batch.add(lambda reply: seen.append(batch.sent), "PING")))
    for _ in range(2_000):
        batch.add(lambda reply: seen.append(batch.sent), "PING")
    assert not batch.sent
    if raw:
        batch.run(client)
    else:
        batch._run_pipeline(client)
    assert built == [False]
    assert len(seen) == 5_001 and seen[-1] is True
    assert sorted(seen) == seen  # once True, never False again
    if not raw:
        assert set(seen) == {True}  # the pipeline hands replies out once everything is sent
