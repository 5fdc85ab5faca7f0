"""Job timing's timestamp reading (rq_exporter_ng/concerns/timing/stamps.py) against parse.timestamp, the
general parser: the same value or the same error, whatever the input, learned seconds or not."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng import parse
from rq_exporter_ng.concerns.timing import stamps
from rq_exporter_ng.concerns.timing.rules import STAMP_FIELDS
from rq_exporter_ng.concerns.timing.stamps import read_stamps, stamp


def outcome(function, raw):
    try:
        return ("value", function(raw))
    except ValueError:
        return ("error", None)


def same(raw) -> None:
    want = outcome(parse.timestamp, raw)
    for _ in range(2):  # the second time from a learned second, if any
        got = outcome(stamp, raw)
        assert got == want, raw
        if got[1] is not None:
            assert math.copysign(1, got[1]) == math.copysign(1, want[1])
        # read_stamps inlines stamp's exact-form branch: the same value, or the raw value left as it is.
        answer = [raw] * 6
        read_stamps([answer], STAMP_FIELDS)
        for i in STAMP_FIELDS:
            if want[0] == "error":
                assert answer[i] is raw
            else:
                assert answer[i] == want[1] and type(answer[i]) is type(want[1]), raw


moments = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=timezone.utc))


@settings(max_examples=2000, deadline=None)
@given(moments)
def test_rqs_own_form_reads_as_the_general_parser_reads_it(moment):
    same(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode())
    same(moment.strftime("%Y-%m-%dT%H:%M:%SZ").encode())


@settings(max_examples=2000, deadline=None)
@given(moments, st.integers(0, 26), st.sampled_from(list(b"0123456789+-_ .:TZz\x00\xff")))
def test_a_changed_character_reads_as_the_general_parser_reads_it(moment, where, byte):
    raw = bytearray(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode())
    same(bytes(raw))  # its second learned first
    raw[where] = byte
    same(bytes(raw))


@pytest.mark.parametrize("raw", [None, b"", b" ", "2027-01-15T08:00:00.000000Z", b"2027-01-15T08:00:60.000000Z",
                                 b"2027-02-30T08:00:00.000000Z", b"2027-01-15T08:00:00.00000Z", b"2027-01-15T08:00:00.0000001Z",
                                 b"2027-01-15T08:00:00.+00000Z", b"2027-01-15T08:00:00.0_0000Z", b"junk"])
def test_odd_values_read_as_the_general_parser_reads_them(raw):
    same(raw)


def test_the_seconds_learned_are_bounded(monkeypatch):
    monkeypatch.setattr(stamps, "_MAX_SECONDS", 3)
    monkeypatch.setattr(stamps, "_SECONDS", {})
    for second in range(10):
        same(b"2027-01-15T08:00:%02d.000001Z" % second)
    assert 1 <= len(stamps._SECONDS) <= 3


values = st.one_of(st.none(), moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()),
                   st.sampled_from([b"", b"junk", b"2027-01-15T08:00:60.000000Z", b"500", b"\x80abc"]))


@settings(max_examples=500, deadline=None)
@given(st.lists(values, min_size=6, max_size=6))
def test_timestamps_read_as_they_arrive_read_as_before_and_nothing_else_changes(answer):
    read = list(answer)
    read_stamps([read, None], STAMP_FIELDS)
    for i, (before, after) in enumerate(zip(answer, read, strict=True)):
        if i not in STAMP_FIELDS:
            assert after is before
        else:
            assert outcome(stamp, after) == outcome(parse.timestamp, before)
            # Read: its float, or None when unset ('' included); what does not read is left as it is.
            assert type(after) is float or after is before or (after is None and outcome(parse.timestamp, before)[1] is None)


# --- read_all / read_compact: a group's stamps at once, against read_stamps and compact ----------
from rq_exporter_ng.concerns.timing.rules import compact, read_compact  # noqa: E402

exact = moments.map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode())
# Mostly RQ's exact form (the group's fast path), sometimes one stamp that is not (read_stamps then).
_stamp = st.one_of(exact, exact, exact, values, exact.map(lambda raw: raw[:-1] + b"z"),
                   exact.map(lambda raw: raw[:20] + b"12_456Z"), exact.map(lambda raw: raw.decode()))
_answer = st.one_of(st.none(), st.tuples(_stamp, _stamp, _stamp, st.sampled_from([None, b"600"]), st.none(),
                                         st.sampled_from([(), (b"data",)])).map(lambda t: [*t[:5], *t[5]]))


def _general(answers: list) -> list:
    read_stamps(answers, STAMP_FIELDS)
    return compact(answers)


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=1000, deadline=None)
@given(st.lists(_answer, max_size=8), st.booleans())
def test_a_group_read_at_once_reads_as_one_answer_at_a_time(answers, fresh):
    read_at_once_as_one_at_a_time(answers, fresh)


def read_at_once_as_one_at_a_time(answers: list, fresh: bool) -> None:
    if fresh:  # no second learned yet: read_all learns them as stamp() does
        stamps._SECONDS.clear()
    expected = _general([None if a is None else list(a) for a in answers])
    got = read_compact([None if a is None else list(a) for a in answers])
    assert got == expected
    assert [type(a) for a in got] == [type(a) for a in expected]
    for g, e in zip(got, expected, strict=True):
        if g is not None:
            assert [type(v) for v in g] == [type(v) for v in e]
    floats = stamps.read_all([None if a is None else list(a) for a in answers], STAMP_FIELDS)
    if floats is not None:  # decided: every stamp of the group a float, as read_stamps reads it
        assert floats == [v for a in expected for v in a[:3]] and all(type(v) is float for v in floats)


def test_a_group_of_rqs_own_form_is_read_at_once():
    answers = [[b"2027-01-15T08:00:%02d.%06dZ" % (k % 60, k), b"2027-01-15T08:00:00.000000Z",
                b"2027-01-14T23:59:59.999999Z", None, None] for k in range(100)]
    floats = stamps.read_all(answers, STAMP_FIELDS)
    assert floats is not None and floats[0] == parse.timestamp(answers[0][0])
    # A stamp of another length, even where the group's total length would still split evenly: not at once.
    assert stamps.read_all([[b"2027-01-15T08:00:00.00000Z", b"Z2027-01-15T08:00:00.000000Z", answers[0][2]]],
                           STAMP_FIELDS) is None


_exact_answer = st.tuples(exact, exact, exact, st.sampled_from([None, b"600"]), st.none(),
                          st.sampled_from([(), (b"data",)])).map(lambda t: [*t[:5], *t[5]])


@settings(max_examples=500, deadline=None)
@given(st.lists(_exact_answer, min_size=1, max_size=8), st.booleans())
def test_a_group_all_in_rqs_own_form_reads_at_once_as_one_answer_at_a_time(answers, fresh):
    read_at_once_as_one_at_a_time(answers, fresh)
    assert stamps.read_all(answers, STAMP_FIELDS) is not None


_plain_answer = st.tuples(exact, exact, exact).map(lambda t: [*t, None, None])


@settings(max_examples=300, deadline=None)
@given(st.lists(_plain_answer, min_size=1, max_size=8), st.booleans(), st.integers(0, 8))
def test_a_group_of_plain_answers_is_compacted_at_once_as_one_at_a_time(answers, fresh, odd):
    # All plain (read_compact's zip of the floats), or one answer not (a TTL field, data, an error).
    read_at_once_as_one_at_a_time(answers, fresh)
    if odd < len(answers):
        for other in ([*answers[odd][:3], b"600", None], [*answers[odd], b"data"], None):
            read_at_once_as_one_at_a_time([*answers[:odd], other, *answers[odd + 1:]], fresh)


def test_one_stamp_field_is_read_as_three_are():
    answers = [[b"2027-01-15T08:00:%02d.%06dZ" % (k % 60, k)] for k in range(5)]
    assert stamps.read_all(answers, (0,)) == [parse.timestamp(a[0]) for a in answers]
