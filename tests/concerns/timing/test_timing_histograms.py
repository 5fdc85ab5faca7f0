"""Job timing's histograms (rq_exporter_ng/concerns/timing/histograms.py), observed a run of jobs at a time,
against prometheus_client's own Histogram observing the same values one by one, and against the
exemplars chosen one observation at a time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client import Histogram as LibraryHistogram

from rq_exporter_ng.concerns.timing.histograms import Histogram
from rq_exporter_ng.concerns.timing.records import Ended
from rq_exporter_ng.settings import DEFAULT_BUCKETS

BOUNDS = tuple(float(b) for b in DEFAULT_BUCKETS)
values = st.one_of(st.sampled_from([0.0, *BOUNDS, 1e9]), st.floats(0, 1e5, allow_nan=False))
ends = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 1.5]), st.floats(0, 2e9, allow_nan=False))


def one_by_one(runs: list[list[tuple[float, Ended]]]) -> list:
    """The exemplars as observing each job alone chooses them: its bucket's job ending last."""
    exemplars: list = [None] * (len(BOUNDS) + 1)
    for run in runs:
        for value, job in run:
            i = next((k for k, bound in enumerate(BOUNDS) if value <= bound), len(BOUNDS))
            latest = exemplars[i]
            if latest is None or (job.ended or 0.0) >= (latest[2] or 0.0):
                exemplars[i] = (job.member, value, job.ended)
    return exemplars


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(values, ends), max_size=30), max_size=4))
def test_a_run_at_a_time_is_the_librarys_histogram_and_the_same_exemplars(runs):
    jobs = [[(value, Ended("q", "finished", b"job-%d-%d" % (r, k), end, None)) for k, (value, end) in enumerate(run)]
            for r, run in enumerate(runs)]
    ours = Histogram(len(BOUNDS) + 1)
    registry = CollectorRegistry()
    library = LibraryHistogram("h", "h", buckets=BOUNDS, registry=registry)
    for run in jobs:
        ours.observe_all(BOUNDS, [value for value, _ in run], [job for _, job in run])
        for value, _ in run:
            library.observe(value)
    samples = next(iter(registry.collect())).samples
    assert ours.cumulative == [s.value for s in samples if s.name == "h_bucket"]  # in bucket order, +Inf last
    assert ours.sum == next(s.value for s in samples if s.name == "h_sum")
    assert ours.exemplars == one_by_one(jobs)


# --- JobTimes.record: its loop observes inline what observe_all observes one job at a time ------
import pickle  # noqa: E402
import zlib  # noqa: E402

from rq_exporter_ng import parse  # noqa: E402
from rq_exporter_ng.concern import taken  # noqa: E402
from rq_exporter_ng.concerns.timing.histograms import DATA, ENQUEUED, STARTED, JobTimes  # noqa: E402
from rq_exporter_ng.concerns.timing.job_timing import TimingOptions  # noqa: E402
from rq_exporter_ng.concerns.timing.records import Outcome  # noqa: E402
from rq_exporter_ng.concerns.timing.stamps import stamp  # noqa: E402
from rq_exporter_ng.keys import Keys  # noqa: E402
from rq_exporter_ng.settings import Settings  # noqa: E402
from rq_exporter_ng.snapshot import Problem  # noqa: E402


def plain_record(times: JobTimes, outcome: Outcome) -> list:
    """What record does, one job at a time, each observed alone (observe_all of one value)."""
    problems = []
    for job in outcome.ended:
        times.counts[job.status][job.queue] += 1
    for job in outcome.ended:
        answer = job.fields
        if answer is None or job.ended is None:
            times.counts["not_timed"][job.queue] += 1
            continue
        try:
            started, enqueued = stamp(answer[STARTED]), stamp(answer[ENQUEUED])
        except ValueError as error:
            problems.append(Problem("bad_timestamp", parse.text(times.keys.job(job.member)), str(error)[:200]))
            times.counts["not_timed"][job.queue] += 1
            continue
        if started is None:
            times.counts["not_timed"][job.queue] += 1
            continue
        func = None
        if times.func_label:
            data = answer[DATA] if len(answer) > DATA else None
            drafted: set[str] = set()
            func = times._func(data if isinstance(data, bytes) else None, drafted)
            times.funcs |= drafted
        times._histogram(times.durations, times.durations, (job.queue, job.status, func)).observe_all(
            times.bounds, [max(0.0, job.ended - started)], [job])
        if enqueued is not None:
            wait = started - enqueued
            times._histogram(times.waits, times.waits, (job.queue, func)).observe_all(
                times.bounds, [wait if wait > 0.0 else 0.0], [job])
    for queue, status, grown in outcome.kept_forever:
        times.counts[status][queue] += grown
        times.counts["not_timed"][queue] += grown
    return problems


def _data(name: str) -> bytes:
    return zlib.compress(pickle.dumps((name, None, (), {}), protocol=5))


_moment = st.one_of(st.sampled_from([1.7e9, 1.7e9 + 0.5, 1.7e9 + 1e4]), st.floats(1.69e9, 1.71e9))
_raw = st.one_of(_moment, st.none(), st.sampled_from([b"2027-01-15T08:00:00.000000Z", b"2027-01-15T08:00:00Z",
                                                      b"not a time", "2027-01-15T08:00:00.5Z"]))
_answer = st.one_of(
    st.none(),
    st.tuples(_moment, _raw, _raw),
    st.tuples(_moment, _raw, _raw, st.none(), st.none(),
              st.sampled_from([None, b"junk", _data("app.a"), _data("app.b")])).map(list))
_job = st.tuples(st.sampled_from(["q", "r"]), st.sampled_from(["finished", "failed"]), st.binary(max_size=3),
                 st.one_of(st.none(), _moment, st.just(0.0)), _answer).map(
    lambda t: Ended(t[0], t[1], t[2], t[3], t[4]))
_outcome = st.tuples(st.lists(_job, max_size=25),
                     st.lists(st.tuples(st.sampled_from(["q", "s"]), st.sampled_from(["finished", "failed"]),
                                        st.integers(1, 3)), max_size=2), st.booleans()).map(
    # Registry by registry (long runs), as the tracker hands them, or in any order.
    lambda t: Outcome(tuple(sorted(t[0], key=lambda j: (j.queue, j.status)) if t[2] else t[0]), tuple(t[1]), ()))


def _times(func_label: bool) -> JobTimes:
    return JobTimes(taken(TimingOptions, Settings(timing_func_label=func_label, timing_func_limit=1)), Keys("rq"))


def _state(times: JobTimes) -> tuple:
    return ({k: dict(v) for k, v in times.counts.items()},
            {k: (list(h.counts), h.cumulative, h.sum, list(h.exemplars)) for k, h in times.durations.items()},
            {k: (list(h.counts), h.cumulative, h.sum, list(h.exemplars)) for k, h in times.waits.items()},
            set(times.funcs))  # copies: a draft that changed the kept ones in place would show


@pytest.mark.slow  # 400 examples: ~4 s on Python 3.11, ~10 s on 3.10, 42 s once under the compat run's load
@settings(max_examples=400, deadline=None)
@given(st.lists(_outcome, min_size=1, max_size=3), st.booleans())
def test_record_is_each_job_observed_alone(outcomes, func_label):
    ours, plain = _times(func_label), _times(func_label)
    for outcome in outcomes:
        assert ours.record(outcome) == plain_record(plain, outcome)
        assert _state(ours) == _state(plain)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_outcome, st.integers(0, 30)), min_size=1, max_size=3), st.booleans())
def test_jobs_observed_ahead_in_a_draft_count_as_recorded_at_once(outcomes, func_label):
    """Job timing observes the jobs of the registries it judges ahead while round 3 is read, and
    the rest at the result: the same as recording all at once. A draft never committed (a scrape
    that failed after it) changes nothing."""
    ours, plain = _times(func_label), _times(func_label)
    for outcome, at in outcomes:
        at = min(at, len(outcome.ended))
        before = _state(ours)
        abandoned = ours.draft()
        ours.observe(abandoned, outcome.ended)
        assert _state(ours) == before
        draft = ours.draft()
        ours.observe(draft, outcome.ended[:at])
        assert ours.record(outcome, draft, at) == plain.record(outcome)
        assert _state(ours) == _state(plain)
