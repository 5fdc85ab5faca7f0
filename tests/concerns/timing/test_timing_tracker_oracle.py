"""The timing tracker against an oracle (tracker_support.py's ``_simulate``), over random TTL mixes,
skews, delays and scrape times: declared TTLs count every job exactly once, undeclared ones never
twice, a TTL learned late catches up within the cap, and past the cap each job is still counted."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tracker_support import _gaps, _jobs, _simulate, timing_with, totals


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps)
def test_declared_ttls_count_every_job_exactly_once(jobs, gaps):
    timing = timing_with(timing_ttls=(40, 60, 500, 505, 3600, 86_400))
    finished, failed, exact, with_boundary = _simulate(jobs, gaps, timing)
    assert exact <= finished + failed <= with_boundary


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps)
def test_undeclared_ttls_never_count_a_job_twice(jobs, gaps):
    finished, failed, _, with_boundary = _simulate(jobs, gaps, timing_with())
    assert finished + failed <= with_boundary


def test_a_ttl_learned_late_catches_up_within_the_cap_without_counting_by_score():
    # TTL 60 is not declared and its jobs carry no result_ttl field: the sweep finds it, and its
    # window then reads the backlog since the floor, at most 12 hashes a scrape.
    # 600 older jobs (TTL 500, ended ~8 min before the exporter started) fill the bottom of the
    # registry, so the sweep needs a while and a backlog of TTL-60 jobs builds up.
    history = [(-440 + i * 0.05, 500, 0.1, 0, False) for i in range(600)]
    jobs = history + [(30 + i * 0.25, 60 if i % 2 else 500, 0.1, 0, False) for i in range(400)]
    timing = timing_with(timing_max_jobs_per_scrape=12, timing_discovery_per_scrape=20)
    deferred = []
    select = timing.tracker.select

    def watch(plan, replies, **options):
        selection = select(plan, replies, **options)
        deferred.extend(selection.deferred.values())
        return selection

    timing.tracker.select = watch
    finished, failed, _, with_boundary = _simulate(jobs, [1.0] * 160, timing)
    assert deferred  # the backlog did exceed the cap
    assert finished + failed <= with_boundary
    assert finished > 200  # TTL-60 jobs counted: all those still in the registry once it was learned
    assert totals(timing)["timed"] == finished  # nothing was counted without its hash
    assert not any(c.catching_up for c in timing.tracker.queues["default"].registries["finished"].ttls.values())


_one_ttl_jobs = st.lists(
    st.tuples(st.floats(0, 240), st.just(500), st.floats(0, 1.5), st.integers(-8, 8), st.booleans()),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_one_ttl_jobs, _gaps, st.integers(0, 20))
def test_past_the_cap_one_ttl_still_counts_every_job_exactly_once(jobs, gaps, cap):
    timing = timing_with(timing_max_jobs_per_scrape=cap, timing_ttls=(500,))
    finished, failed, exact, with_boundary = _simulate(jobs, gaps, timing)
    assert exact <= finished + failed <= with_boundary
    got = totals(timing)
    assert got["timed"] + got["rq_exporter_jobs_not_timed"] == finished + failed

