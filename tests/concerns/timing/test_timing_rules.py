"""The timing tracker's per-entry rules (rq_exporter_ng/concerns/timing/rules.py), one by one, without Redis."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pytest

from rq_exporter_ng.concerns.timing import rules
from rq_exporter_ng.concerns.timing.rules import Case, Count, Learn, Remember, Skip, judge
from rq_exporter_ng.snapshot import Problem

T0 = 1_800_000_000
ENDED = b"2027-01-15T08:00:00.000000Z"  # T0 as RQ writes it
STARTED = b"2027-01-15T07:59:58.500000Z"


@dataclass
class Cursor:
    cursor: int


def entry(**changes) -> Case:
    """A finished job of TTL 500 found by its window, hash read, ended at T0, nothing learned yet."""
    base = Case(status="finished", member=b"job-1", score=T0 + 500, window=500,
                 fields={b"ended_at": ENDED, b"started_at": STARTED, b"enqueued_at": STARTED},
                 ttls={500: Cursor(T0 - 15), 31_536_000: Cursor(T0 - 15)}, learned=(), floor=T0 - 100,
                 edge=12, job_prefix=b"rq:job:")
    return replace(base, **changes)


def test_the_plain_case_counts_and_times_the_job():
    assert judge(entry()) == [Count(500, timed=True, ended=float(T0))]


def test_past_the_cap_counts_by_the_windows_ttl_untimed():
    assert rules.past_the_cap(entry(fields=None)) == [Count(500, timed=False)]
    assert rules.past_the_cap(entry()) is None
    assert judge(entry(fields=None)) == [Count(500, timed=False)]


def test_an_entry_without_a_hash_is_reported_once_by_its_window():
    gone = entry(fields=dict.fromkeys(rules.JOB_FIELDS))
    assert rules.no_hash(gone) == [Problem("missing_job", "rq:job:job-1", "registry entry without a job hash"),
                                   Remember(T0)]
    assert rules.no_hash(replace(gone, window=None)) == [Skip()]  # discovery: nothing to learn
    assert rules.no_hash(entry()) is None


def test_no_end_time_counts_by_the_window_untimed():
    moved = entry(fields={b"started_at": STARTED})  # RQ moved it to failed after its worker died
    assert rules.no_end_time(moved, None) == [Count(500, timed=False)]
    assert rules.no_end_time(replace(moved, window=None), None) == [Skip()]
    assert rules.no_end_time(moved, float(T0)) is None


def test_a_malformed_end_time_is_a_problem_and_the_job_counts_untimed():
    bad = entry(fields={b"ended_at": b"yesterday", b"started_at": STARTED})
    verdicts = judge(bad)
    assert verdicts[-1] == Count(500, timed=False)
    assert [v.reason for v in verdicts if isinstance(v, Problem)] == ["bad_timestamp"]


def test_an_unknown_ttl_is_learned_not_counted():
    # ended at T0, score T0 + 86400: a TTL nobody declared
    odd = entry(score=T0 + 86_400)
    assert rules.unknown_ttl(odd, None, 86_400) == [Learn("finished", 86_400)]
    assert judge(odd) == [Learn("finished", 86_400)]


def test_a_ttl_within_tolerance_is_the_known_one():
    assert rules.nearest({500: None}, 502) == 500
    assert rules.nearest({500: None}, 503) is None
    assert rules.nearest({499: None, 501: None}, 500) == 499  # a tie: the shorter
    assert judge(entry(score=T0 + 501)) == [Count(500, timed=True, ended=float(T0))]


def test_discovery_leaves_a_known_ttl_to_its_window():
    assert rules.found_by_discovery(entry(window=None), 500) == [Skip()]
    assert judge(entry(window=None)) == [Skip()]


def test_a_ttl_learned_this_scrape_counts_next_scrape():
    assert judge(entry(learned={500})) == [Skip()]


def test_an_older_entry_passing_through_a_shorter_window_is_remembered_not_counted():
    # A year-TTL failure that ended long ago has a score inside the 500 s window's range; its own
    # TTL's window (cursor at T0 - 15) began after it ended, so it is history.
    old = entry(status="failed", window=500, score=T0 - 10_000 + 31_536_000,
                fields={b"ended_at": b"2027-01-15T05:13:20.000000Z", b"started_at": STARTED})
    assert rules.passing_through(old, 31_536_000) == [Remember(old.score - 500)]
    assert judge(old) == [Remember(old.score - 500)]


def test_ttl_hints_teach_both_registries_and_ignore_garbage():
    assert rules.ttl_hints({b"result_ttl": b"600", b"failure_ttl": b"86400"}) == [
        Learn("finished", 600), Learn("failed", 86_400)]
    assert rules.ttl_hints({b"result_ttl": b"-1", b"failure_ttl": b"x"}) == []
    assert rules.ttl_hints({}) == []


# --- plain_count: the common verdict without a Case, against judge() ---------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS, STAMP_FIELDS, compact, plain_count  # noqa: E402
from rq_exporter_ng.concerns.timing.stamps import read_stamps  # noqa: E402

_stamps = st.sampled_from([ENDED, STARTED, b"2027-01-15T07:59:59.999999Z", b"2027-01-15T08:00:02Z", b"", b"junk",
                           b"2027-01-15T08:00:01.000000Z", None])
_ttl_fields = st.sampled_from([None, b"500", b"600", b"-1", b"x"])


@settings(max_examples=500, deadline=None)
@given(ended=_stamps, ttls=st.tuples(_ttl_fields, _ttl_fields), offset=st.integers(-6, 6),
       window=st.sampled_from([500, 600]), cursor=st.integers(T0 - 30, T0 + 30))
def test_plain_count_decides_only_what_judge_decides(ended, ttls, offset, window, cursor):
    answer = [ended, STARTED, STARTED, *ttls, None]
    score = T0 + window + offset
    known = {500: Cursor(cursor), 31_536_000: Cursor(cursor)} if window == 500 else \
        {600: Cursor(cursor), 31_536_000: Cursor(cursor)}
    e = entry(score=score, window=window, fields=dict(zip(JOB_FIELDS, answer)), ttls=known)
    when = plain_count(answer, score, window, e.window_low(window))
    if when is not None:
        assert judge(e) == [Count(window, timed=True, ended=when)]
    # The same answer with its timestamps read as it arrived (reads.py): the same verdicts.
    read = list(answer)
    read_stamps([read, None], STAMP_FIELDS)
    assert plain_count(read, score, window, e.window_low(window)) == when
    assert judge(replace(e, fields=dict(zip(JOB_FIELDS, read)))) == judge(e)
    # Read without the func label's data, then compacted as reads.py keeps it: the same again.
    without_data = list(answer[:-1])
    read_stamps([without_data], STAMP_FIELDS)
    [kept] = compact([without_data])
    assert list(kept) + [None] * (len(JOB_FIELDS) - len(kept)) == read
    assert plain_count(kept, score, window, e.window_low(window)) == when
    fields = dict(zip(JOB_FIELDS, kept))
    assert judge(replace(e, fields=fields)) == judge(e)
    assert rules.ttl_hints(fields) == rules.ttl_hints(e.fields)
    assert compact([None]) == [None]  # an error reply
    assert compact([read])[0] is read  # read with data (the func label): kept as it is


def test_plain_count_decides_the_plain_case_and_passes_the_rest():
    plain = [ENDED, STARTED, STARTED, None, None, None]
    assert plain_count(plain, T0 + 500, 500, T0 - 100) == float(T0)
    assert plain_count(plain, T0 + 500, 500, T0 + 1) is None  # before the window's start: passing through
    assert plain_count([ENDED, STARTED, STARTED, b"500", None, None], T0 + 500, 500, T0 - 100) is None  # a hint
    assert plain_count([b"junk", STARTED, STARTED, None, None, None], T0 + 500, 500, T0 - 100) is None
    assert plain_count(plain, T0 + 86_400, 500, T0 - 100) is None  # another TTL


# --- plain_bounds: the tracker's inline check, against plain_count --------------------------------
from rq_exporter_ng.concerns.timing.rules import plain_bounds  # noqa: E402

_seconds = st.integers(-3, 3).map(float) | st.floats(-4, 4, allow_nan=False)


@settings(max_examples=2000, deadline=None)
@given(window=st.sampled_from([1, 2, 3, 4, 60, 500, 31_536_000]), ended=st.floats(0, 4e9, allow_nan=False),
       offset=_seconds, low_offset=st.integers(-3, 3))
def test_the_inline_check_decides_only_what_plain_count_decides(window, ended, offset, low_offset):
    score = math.floor(ended) + window + offset
    low = int(score - window) + low_offset
    bounds = plain_bounds(window, low)
    if bounds is None:
        assert window <= rules.TOLERANCE
        return
    answer = (ended, ended - 1.0, ended - 2.0)  # compacted (rules.compact)
    if bounds[0] <= score - math.floor(ended) < bounds[1] and score - window >= bounds[2]:
        assert plain_count(answer, score, window, low) == ended


# --- plain_range: the inline check made once a score, against plain_bounds' and plain_count --------
from rq_exporter_ng.concerns.timing.rules import plain_range  # noqa: E402


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=3000, deadline=None)
@given(window=st.sampled_from([1, 2, 3, 4, 60, 500, 31_536_000]),
       ended=st.floats(0, 4e9, allow_nan=False) | st.floats(allow_nan=False, allow_infinity=False),
       offset=_seconds | st.floats(-1e9, 1e9), low_offset=st.integers(-3, 3),
       score_form=st.sampled_from(["near", "any"]), score_any=st.floats(allow_nan=True, allow_infinity=True))
def test_the_range_a_score_decides_what_the_inline_check_decides(window, ended, offset, low_offset, score_form,
                                                                  score_any):
    score = math.floor(ended) + window + offset if score_form == "near" else score_any
    low = int(ended) + low_offset if score_form == "any" or not math.isfinite(score - window) \
        else int(score - window) + low_offset
    span = plain_range(window, low, score)
    if span is None:
        return
    bounds = plain_bounds(window, low)
    assert bounds is not None
    inline = bounds[0] <= score - math.floor(ended) < bounds[1] and score - window >= bounds[2]
    assert (span[0] <= ended < span[1]) == inline
    if inline:
        assert plain_count((ended, ended - 1.0, ended - 2.0), score, window, low) == ended
