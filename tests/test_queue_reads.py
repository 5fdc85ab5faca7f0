"""queue_reads.py: a queue's empty keys asked about by one EXISTS give the values of the full reads,
whatever the memory holds, on a real Redis; an idle queue costs 5 commands; a refused EXISTS
turns the shortcut off and loses nothing."""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from devkit import rq_time
from rq_exporter_ng import reader
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.connection import connect
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.queue_reads import FULL, PARTS, QUEUE_VALUES, SHAPES, Quiet, quiet_of, reads
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.settings import Settings

KEYS = Keys("rq")
ALL_QUIET = (1 << len(PARTS)) - 1


def values_with(quiet: int) -> tuple:
    """13 values whose parts in ``quiet`` read empty and the others not."""
    values = [7] * len(QUEUE_VALUES)
    for bit, part in enumerate(PARTS):
        if quiet >> bit & 1:
            values[QUEUE_VALUES.index(part[1])] = 0
    return tuple(values)


def test_the_full_shape_is_the_13_reads():
    assert FULL.reads(b"q", KEYS, 1e9) == reads(b"q", KEYS, 1e9) and FULL.size == len(QUEUE_VALUES)


@pytest.mark.parametrize("quiet", range(1, ALL_QUIET + 1))
def test_each_shape_spreads_its_replies_where_the_full_reads_had_them(quiet):
    shape = SHAPES[quiet]
    full = reads(b"q", KEYS, 1e9)
    replies = [f"reply of {command}" for command in full]  # each reply names its read
    kept = [command for command in shape.reads(b"q", KEYS, 1e9) if command[0] != "EXISTS"]
    exists = shape.reads(b"q", KEYS, 1e9)[-1]
    later = shape.later(b"q", KEYS, 1e9)
    assert exists[0] == "EXISTS" and len(exists) - 1 == bin(quiet).count("1") and shape.size == len(kept) + 1
    assert sorted(kept + later, key=full.index) == full and not set(kept) & set(later)
    spread = shape.spread([replies[full.index(c)] for c in kept] + [0])
    assert [v if v != 0 else None for v in spread] == [None if c in later else r for c, r in zip(full, replies)]
    assert shape.fill(spread, [replies[full.index(c)] for c in later]) == replies
    assert quiet_of(values_with(quiet)) == quiet
    # What this read learns: its quiet parts stay so unless round 3 read them; a direct one empty joins them.
    assert shape.quiet_after(values_with(quiet), False) == quiet
    assert shape.quiet_after(values_with(0), True) == 0
    assert shape.quiet_after(values_with(ALL_QUIET), False) == ALL_QUIET


def test_a_length_that_is_an_error_is_not_quiet():
    values = list(values_with(ALL_QUIET))
    values[QUEUE_VALUES.index("finished_all")] = None
    assert quiet_of(values) == ALL_QUIET & ~(1 << 2)


# What a queue's keys can hold: each part's key absent, empty of live entries, with some, or a
# string (an error reply to its reads).
contents = st.fixed_dictionaries({part[0]: st.sampled_from(["absent", "expired", "some", "wrong"]) for part in PARTS})


def fill(client, raw: bytes, what: dict, now: int, head: bool = True) -> None:
    p = KEYS.per_queue
    client.sadd("rq:queues", p["queue"] + raw)
    if head:
        client.rpush(p["queue"] + raw, b"head")
        client.hset(KEYS.job(b"head"), "enqueued_at", rq_time(now - 30))
    client.zadd(p["failed"] + raw, {b"f": now + 100})
    for part, state in what.items():
        key = KEYS.intermediate(raw) if part == "intermediate" else p["wip" if part == "started" else part] + raw
        if state == "wrong":
            client.set(key, b"not a list or sorted set")
        elif part == "intermediate" and state != "absent":
            client.rpush(key, b"j")
        elif state != "absent":
            client.zadd(key, {b"old": now - 50} if state == "expired" else {b"old": now - 50, b"new": now + 50})


@pytest.mark.redis
@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queues=st.lists(st.tuples(contents, st.integers(0, ALL_QUIET), st.booleans()), min_size=1, max_size=6))
def test_whatever_the_memory_holds_the_values_are_the_full_reads(redis_db, monkeypatch, queues):
    monkeypatch.setattr(reader, "QUEUES_PER_RUN", 2)  # runs of each shape cut short, and interleaved
    client = redis_db.client()
    client.flushall()
    now = int(client.time()[0])
    monkeypatch.setattr(reader.time, "time", lambda: float(now))  # the same ages in both reads
    quiet = Quiet()
    for i, (what, _, head) in enumerate(queues):
        fill(client, b"q%d" % i, what, now, head)  # a queue without a head job: built in round 3 too
    quiet.learn([(b"q%d" % i, FULL, False, values_with(mask)) for i, (_, mask, _) in enumerate(queues)])
    exporter = connect(Settings(redis_url=redis_db.url))
    hinted = read_snapshot(exporter, KEYS, quiet=quiet)
    plain = read_snapshot(exporter, KEYS)
    assert hinted.queues == plain.queues
    # The same problems (a key read in round 3 reports its own after round 2's)
    assert sorted(hinted.problems, key=repr) == sorted(plain.problems, key=repr)
    # each read of a key that is not of its type: one problem (a part's reads: as many as its values)
    assert len(plain.problems) == sum(len(p) - 1 for what, _, _ in queues for p in PARTS if what[p[0]] == "wrong")
    # What it learnt: the parts whose keys hold none that count (an expired entry counts for ZCARD).
    for i, (what, _, _) in enumerate(queues):
        want = sum(1 << bit for bit, part in enumerate(PARTS) if what[part[0]] == "absent")
        assert quiet.shape(b"q%d" % i).quiet == want


def commands_sent(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


@pytest.mark.redis
def test_an_idle_queue_costs_5_commands_and_a_key_that_appears_is_read_at_once(redis_db, monkeypatch):
    """Queue q7 has no head job: its state is built once round 3 has read its keys."""
    client = redis_db.client()
    now = int(client.time()[0])
    monkeypatch.setattr(reader.time, "time", lambda: float(now))
    for i in range(50):
        fill(client, b"q%d" % i, {part[0]: "absent" for part in PARTS}, now, head=i != 7)
    exporter = connect(Settings(redis_url=redis_db.url))
    quiet = Quiet()
    first = read_snapshot(exporter, KEYS, quiet=quiet)  # every key read, and learnt empty
    client.config_resetstat()
    second = read_snapshot(exporter, KEYS, quiet=quiet)
    sent = commands_sent(client)
    assert second.queues == first.queues
    # per queue: LLEN, LINDEX, two ZCOUNTs of failed, one EXISTS (and the head job's HMGET)
    assert sent["exists"] == 50 and sent["llen"] == 50 and sent["zcount"] == 100 and "zcard" not in sent
    client.zadd(KEYS.per_queue["finished"] + b"q7", {b"done": now + 500})
    client.zadd(KEYS.per_queue["scheduled"] + b"q7", {b"later": now + 60, b"late": now - 5})
    third = read_snapshot(exporter, KEYS, quiet=quiet)
    q7 = next(q for q in third.queues if q.name == "q7")
    assert (q7.finished, q7.scheduled, q7.overdue_scheduled) == (1, 2, 1) and third.round_trips == 3
    assert read_snapshot(exporter, KEYS).queues == third.queues
    assert quiet.shape(b"q7").quiet == ALL_QUIET & ~(1 << 2) & ~(1 << 4)  # read directly from now on
    # redis-py's pipeline (no templates) reads the same shapes the same way
    monkeypatch.setattr(reader, "template", lambda commands: None)
    assert read_snapshot(exporter, KEYS, quiet=quiet).queues == third.queues


@pytest.mark.redis
def test_a_refused_exists_loses_nothing_and_turns_the_shortcut_off(redis_db, monkeypatch, caplog):
    client = redis_db.client()
    now = int(client.time()[0])
    monkeypatch.setattr(reader.time, "time", lambda: float(now))
    fill(client, b"idle", {part[0]: "absent" for part in PARTS}, now)
    fill(client, b"busy", {part[0]: "some" for part in PARTS}, now)
    # The ACL user of an exporter set up before EXISTS was needed: every other read allowed.
    client.execute_command("ACL", "SETUSER", "old", "on", ">pw", "resetkeys", "%R~rq:*", "-@all", "+hmget",
                           "+lindex", "+llen", "+mget", "+smembers", "+zcard", "+zcount")
    exporter = connect(Settings(redis_url=redis_db.url.replace("redis://", "redis://old:pw@")))
    quiet = Quiet()
    quiet.learn([(b"idle", FULL, False, values_with(ALL_QUIET)), (b"busy", FULL, False, values_with(ALL_QUIET))])
    refused = read_snapshot(exporter, KEYS, quiet=quiet)
    # Nothing skipped (the keys were read in round 3), so no problem; one line says why
    assert refused.queues == read_snapshot(connect(Settings(redis_url=redis_db.url)), KEYS).queues
    assert refused.problems == ()
    assert quiet.refused and quiet.shape(b"idle") is FULL
    assert caplog.text.count("Redis refused EXISTS") == 1 and "no permissions" in caplog.text
    assert read_snapshot(exporter, KEYS, quiet=quiet).problems == ()
    assert quiet.shape(b"idle") is FULL


def test_any_other_error_reply_to_an_exists_leaves_the_shortcut_on():
    # Redis busy with a script, say: that scrape's keys are read in round 3, the next scrape as before.
    quiet = Quiet()
    quiet.learn([(b"q", FULL, False, values_with(ALL_QUIET))])
    quiet.error(redis.exceptions.ResponseError("BUSY Redis is busy running a script"))
    assert not quiet.refused and quiet.shape(b"q").quiet == ALL_QUIET
    quiet.error(redis.exceptions.NoPermissionError("NOPERM no permissions to run the 'exists' command"))
    assert quiet.refused and quiet.shape(b"q") is FULL


@pytest.mark.redis
def test_the_collector_keeps_what_it_learnt_between_scrapes(redis_db):
    client = redis_db.client()
    fill(client, b"idle", {part[0]: "absent" for part in PARTS}, int(client.time()[0]))
    collector = RQCollector(connect(Settings(redis_url=redis_db.url)), Settings(redis_url=redis_db.url))
    list(collector.collect())
    client.config_resetstat()
    list(collector.collect())
    assert commands_sent(client).get("exists") == 1
