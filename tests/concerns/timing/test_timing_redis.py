"""Job timing's Redis side (rq_exporter_ng/concerns/timing/reads.py, registry_reads.py) without Redis: the commands each plan sends,
and the replies turned into results (the idle short cut against the full reading)."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rq_exporter_ng.concerns.timing.records import SWEEP_CHUNK, Probe, RegistryPlan, RegistryReply, Window
from rq_exporter_ng.concerns.timing.registry_reads import commands, full_reply, idle_reply
from rq_exporter_ng.concerns.timing.tracker import PROBE_CHUNK

KEY = b"rq:finished:q"


def plan(status="finished", probe=Probe.IN_WINDOW_WITH_FOREVER, windows=((500, 1000, 2000),), sweep=None):
    ws = tuple(Window(*w) for w in windows)
    return RegistryPlan("q", b"q", status, ws, probe, ws[-1].high if ws else 0, sweep)


def test_each_probe_mode_is_its_redis_syntax():
    assert commands(plan(probe=Probe.IN_WINDOW_WITH_FOREVER), KEY) == [
        ("ZRANGEBYSCORE", KEY, 1000, "+inf", "WITHSCORES")]
    assert commands(plan(probe=Probe.IN_WINDOW), KEY) == [
        ("ZRANGEBYSCORE", KEY, 1000, "(inf", "WITHSCORES"), ("ZCOUNT", KEY, "+inf", "+inf")]
    assert commands(plan(probe=Probe.ALONE), KEY) == [
        ("ZRANGEBYSCORE", KEY, 1000, 2000, "WITHSCORES"),
        ("ZRANGEBYSCORE", KEY, "(2000", "(inf", "WITHSCORES", "LIMIT", 0, PROBE_CHUNK),
        ("ZCOUNT", KEY, "+inf", "+inf")]
    # The failed registry's jobs kept forever (score -1) are the reader's count: no ZCOUNT here.
    assert commands(plan(status="failed", probe=Probe.IN_WINDOW), KEY) == [
        ("ZRANGEBYSCORE", KEY, 1000, "(inf", "WITHSCORES")]
    assert commands(plan(probe=Probe.IN_WINDOW, sweep=(5.0, 2)), KEY)[1] == (
        "ZRANGEBYSCORE", KEY, "5.0", "(inf", "WITHSCORES", "LIMIT", 2, SWEEP_CHUNK)


def test_the_full_reading_splits_the_longest_windows_read_into_window_probe_and_kept_forever():
    rp = plan(probe=Probe.IN_WINDOW_WITH_FOREVER)
    got = full_reply(rp, [[b"a", b"1500", b"b", b"2001", b"c", b"inf"]])
    assert got == RegistryReply({500: [(b"a", 1500.0)]}, [(b"b", 2001.0)], True, [], 1)


def _normal(reply: RegistryReply) -> tuple:
    return (dict(reply.windows), tuple(reply.probe), reply.probe_found, tuple(reply.sweep), reply.forever)


answers = st.lists(st.sampled_from([b"m", b"1500", b"2500", b"inf"]), max_size=4).map(list)


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from(["finished", "failed"]), probe=st.sampled_from(list(Probe)),
       windows=st.sampled_from([(), ((500, 1000, 2000),), ((60, 10, 20), (500, 1000, 2000))]),
       sweep=st.sampled_from([None, (5.0, 0)]), first=st.sampled_from([[], None]) | answers,
       rest=st.lists(st.sampled_from([[], None, 0, 3]) | answers, min_size=3, max_size=3))
def test_the_idle_short_cut_says_what_the_full_reading_says(status, probe, windows, sweep, first, rest):
    assume(probe is Probe.ALONE or windows)  # the probe rides in a window only when there is one
    rp = plan(status, probe, windows, sweep)
    replies = ([first, *rest])[:len(commands(rp, KEY))]
    short = idle_reply(rp, replies)
    if short is not None:
        assert _normal(short) == _normal(full_reply(rp, replies))


def test_the_idle_short_cut_takes_the_idle_registries():
    assert idle_reply(plan(probe=Probe.IN_WINDOW_WITH_FOREVER), [[]]) is not None
    assert idle_reply(plan(status="failed", probe=Probe.IN_WINDOW), [[]]) is not None
    assert idle_reply(plan(probe=Probe.IN_WINDOW), [[], 4]).forever == 4
    assert idle_reply(plan(probe=Probe.IN_WINDOW_WITH_FOREVER), [[b"a", b"1500"]]) is None


@settings(max_examples=300, deadline=None)
@given(status=st.sampled_from(["finished", "failed"]), probe=st.sampled_from(list(Probe)),
       windows=st.sampled_from([((500, 1000, 2000),), ((60, 10, 20), (500, 1000, 2000))]),
       sweep=st.sampled_from([None, (5.0, 0)]),
       replies=st.lists(st.sampled_from([[], None, 0, 3]) | answers, min_size=5, max_size=5),
       seen=st.sets(st.tuples(st.sampled_from([b"m", b"1500", b"2500", b"inf"]),
                              st.sampled_from([15.0, 1500.0, 2500.0, float("inf")]))))
def test_the_remembered_entries_are_left_out_of_the_windows_and_nothing_else(status, probe, windows, sweep, replies,
                                                                              seen):
    rp = plan(status, probe, windows, sweep)
    replies = replies[:len(commands(rp, KEY))]
    whole, left = full_reply(rp, replies), full_reply(rp, replies, seen)
    assert _normal(left._replace(windows={})) == _normal(whole._replace(windows={}))
    unseen = {ttl: [e for e in entries if e not in seen] for ttl, entries in whole.windows.items()}
    assert dict(left.windows) == {ttl: entries for ttl, entries in unseen.items() if entries}


# --- _entries: each score read once and the pairs zipped, against a comprehension a pair ------------
from rq_exporter_ng.concerns.timing import registry_reads  # noqa: E402


def _entries_one_at_a_time(answer):
    if not answer:
        return []
    try:
        if isinstance(answer[0], list | tuple):
            return [(bytes(member), float(score)) for member, score in answer]
        flat = iter(answer)
        return [(bytes(member), float(score)) for member, score in zip(flat, flat)]
    except (TypeError, ValueError):
        return []


_element = st.sampled_from([b"a", b"b", b"1500", b"1500.5", b"-inf", b"inf", b"nan", b"x", "1500", 7, None,
                            bytearray(b"1500"), b"1e3", b"1000"])


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.none(), st.lists(_element, max_size=9), st.lists(st.tuples(_element, _element), max_size=4)))
def test_a_reply_reads_as_a_comprehension_a_pair_reads_it(answer):
    got, want = registry_reads._entries(answer), _entries_one_at_a_time(answer)
    assert [(m, str(s)) for m, s in got] == [(m, str(s)) for m, s in want]  # str: nan == nan
    assert [(type(m), type(s)) for m, s in got] == [(type(m), type(s)) for m, s in want]
