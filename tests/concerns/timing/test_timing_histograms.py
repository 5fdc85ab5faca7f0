"""Job timing's histograms (rq_exporter_ng/concerns/timing/histograms.py), observed a run of jobs at a time,
against prometheus_client's own Histogram observing the same values one by one, and against the
exemplars chosen one observation at a time."""

from __future__ import annotations

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
