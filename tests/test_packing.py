"""packing.py's templates give the bytes hiredis packs, for any name and key prefix; a scrape read
through them equals one read command by command, on a real Redis."""

from __future__ import annotations

from functools import partial

import hiredis
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rq_exporter_ng import packing, reader
from rq_exporter_ng.connection import connect
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.queue_reads import FULL, SHAPES
from rq_exporter_ng.queue_reads import reads as _queue_reads
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.settings import Settings


def _plain(commands: list[tuple]) -> bytes:
    return b"".join(map(hiredis.pack_command, commands))


names = st.one_of(st.sampled_from([b"", b"default", b"%s%d%%", b"%(name)s", b"\r\n$3\r\n", b"\xff\x00",
                                   packing._MARK[1:], "é".encode()]),
                  st.binary(max_size=40))
prefixes = st.one_of(st.sampled_from(["rq", "%", "%(9)d", "a:b", "ü", "{x}"]),
                     st.text(min_size=1, max_size=12))


@hsettings(max_examples=300, deadline=None)
@given(name=names, prefix=prefixes, now=st.floats(min_value=0, max_value=4e9), shape=st.sampled_from(SHAPES))
def test_a_queues_reads_packed_from_the_template_are_what_hiredis_packs(name, prefix, now, shape):
    # Every shape (the full reads, and those with an EXISTS of the keys found empty) packs right.
    commands = partial(shape.reads, keys=Keys(prefix), now=now)
    found = packing.template(commands)
    assert found is not None
    assert found.pack(name) == _plain(commands(name))
    group = found.group(name)
    assert len(group) == shape.size and list(group) == commands(name) and group.packed() == found.pack(name)


def test_no_template_where_it_could_not_reproduce_hiredis(monkeypatch):
    # The name twice in one argument: one slot per argument only.
    assert packing.template(lambda name: [("GET", name + b":" + name)]) is None
    # Commands without the name are constant and fine.
    constant = packing.template(lambda name: [("LLEN", b"fixed"), ("LLEN", name)])
    assert constant is not None and constant.pack(b"q") == _plain([("LLEN", b"fixed"), ("LLEN", b"q")])
    monkeypatch.setattr(packing, "hiredis", None)  # without hiredis the pipeline sends the commands
    assert packing.template(lambda name: [("LLEN", name)]) is None


@pytest.mark.redis
def test_a_snapshot_read_through_templates_equals_one_read_command_by_command(redis_db, monkeypatch):
    client = redis_db.client()
    awkward = [b"default", b"%s%d", "é".encode(), b"\xff\xfe", b"a b", b"x" * 200]
    for i, raw in enumerate(awkward):
        client.sadd("rq:queues", b"rq:queue:" + raw)
        client.rpush(b"rq:queue:" + raw, *[b"job%d" % k for k in range(i)] or [b"only"])
        client.zadd(b"rq:finished:" + raw, {b"f%d" % k: 1 + k * 4e9 for k in range(i + 1)})
        client.zadd(b"rq:scheduled:" + raw, {b"s": 1, b"t": 4e9})
    client.set(b"rq:failed:" + awkward[1], b"not a zset")  # an error reply inside a packed group
    exporter = connect(Settings(redis_url=redis_db.url))
    keys = Keys("rq")
    packed = read_snapshot(exporter, keys)
    monkeypatch.setattr(reader, "template", lambda commands: None)
    plain = read_snapshot(exporter, keys)
    assert packed.queues == plain.queues and packed.problems == plain.problems
    assert [p.key for p in packed.problems if p.reason == "wrong_type"] == ["rq:failed:%s%d"] * 2
    assert {q.name: q.finished for q in packed.queues}["\\xff\\xfe"] == 3  # of 4: the one at score 1 expired


@hsettings(max_examples=50, deadline=None)
@given(names=st.lists(names, min_size=2, max_size=20), prefix=prefixes)
def test_one_template_packs_many_names_some_of_one_length(names, prefix):
    # The format made for a length of name is kept and reused by every later name of that length.
    commands = partial(_queue_reads, keys=Keys(prefix), now=1.7e9)
    found = packing.template(commands)
    assert found is not None
    for name in names + [b"q" * len(name) for name in names] + names:
        assert found.pack(name) == _plain(commands(name))


def test_formats_past_the_kept_lengths_are_made_each_time(monkeypatch):
    monkeypatch.setattr(packing, "_KEPT_LENGTHS", 2)
    commands = partial(_queue_reads, keys=Keys("rq"), now=1.7e9)
    found = packing.template(commands)
    assert found is not None
    for name in [b"a", b"bb", b"ccc", b"dddd", b"ccc", b"a"]:
        assert found.pack(name) == _plain(commands(name))
    assert sorted(found._by_length) == [1, 2]


@hsettings(max_examples=100, deadline=None)
@given(run=st.lists(names, max_size=12), prefix=prefixes)
def test_a_run_of_names_is_their_groups_one_after_the_other(run, prefix):
    commands = partial(_queue_reads, keys=Keys(prefix), now=1.7e9)
    found = packing.template(commands)
    assert found is not None
    packed = found.run(run)
    expected = [command for name in run for command in commands(name)]
    assert len(packed) == len(expected) == 13 * len(run)
    assert packed.packed() == _plain(expected)
    assert list(packed) == expected


def test_replies_of_a_run_go_to_each_queue_in_order():
    queues = [reader._Queue(b"q%d" % i, f"q{i}", FULL) for i in range(3)]
    reader._take_run(FULL, queues, list(range(39)))
    assert [list(q.replies) for q in queues] == [list(range(13 * i, 13 * i + 13)) for i in range(3)]


def test_a_run_of_names_is_packed_from_its_template_or_else_its_commands_as_they_are():
    def reads(name: bytes) -> list[tuple]:
        return [("LLEN", b"q:" + name), ("HMGET", b"j:" + name, b"a", b"b")]

    names = [b"one", b"%s", b"\xff", b""]
    expected = [command for name in names for command in reads(name)]
    found = packing.template(reads)
    assert found is not None
    run = packing.run_of(found, reads, names)
    assert isinstance(run, packing.Run)
    assert list(run.commands()) == expected and run.packed() == _plain(expected)
    assert packing.run_of(None, reads, names) == expected
