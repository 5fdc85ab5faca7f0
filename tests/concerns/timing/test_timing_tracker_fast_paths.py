"""The timing tracker's fast paths against the general way they stand in for: select's lone window
against its general loops, a score's check made once, a registry judged at once (plain.py) and
registries judged ahead in round 3 (reads.py) against apply alone; and the candidates reads.py
releases to apply, in their order, let go once passed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tracker_support import (
    T0,
    Registries,
    _Batch,
    _gaps,
    _jobs,
    _simulate,
    reads,
    result,
    timing_families,
    timing_with,
    totals,
)

from rq_exporter_ng.snapshot import QueueState, Snapshot


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-20, 40)), max_size=30), st.integers(0, 40),
       st.lists(st.integers(0, 40), max_size=10))
def test_select_of_a_lone_window_says_what_the_general_loops_say(entries, cap, remembered):
    """select's fast path (one window, no probe or sweep entries, all within the cap) against the
    general loops, forced by a probe entry inside the window's range (which they skip)."""
    from rq_exporter_ng.concerns.timing.records import RegistryReply
    timing = timing_with(timing_max_jobs_per_scrape=cap)
    tracker = timing.tracker
    tracker.queues.update(tracker.plan([(b"q", "q")], T0).new_queues)
    tracker.last_now = T0
    plan = tracker.plan([(b"q", "q")], T0 + 15)
    rp = plan.registries[0]
    assert len(rp.windows) == 1
    seen = tracker.queues["q"].registries[rp.status].seen
    for k in remembered:
        seen[(b"job-%d" % k, float(T0 + 500 + k % 7))] = T0 + 100
    window = sorted({b"job-%d" % m: (b"job-%d" % m, float(T0 + 500 + s)) for m, s in entries}.values(),
                    key=lambda e: (e[1], e[0]))  # a sorted set's read: each member once, by score
    reply = RegistryReply({rp.windows[0].ttl: window} if window else {})
    forced = reply._replace(probe=[(b"inside", float(T0 + 500))])
    fast, general = tracker.select(plan, [reply]), tracker.select(plan, [forced])
    assert fast.candidates == general.candidates
    assert fast.deferred == general.deferred and fast.sweep_afforded == general.sweep_afforded
    # reads.py leaves the remembered entries out of the replies already, and says so.
    unseen = seen.unseen(window)
    told = RegistryReply({rp.windows[0].ttl: unseen} if unseen else {})
    assert tracker.select(plan, [told], unseen=True).candidates == fast.candidates
    assert tracker.select(plan, [told._replace(probe=forced.probe)], unseen=True).candidates == fast.candidates


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 2500])
def test_candidates_released_to_apply_come_in_their_order_and_are_released_once_passed(size):
    import gc
    import weakref

    from rq_exporter_ng.concerns.timing.reads import _released
    from rq_exporter_ng.concerns.timing.records import Candidate

    class Member:  # weakly referable, unlike bytes: shows when a judged candidate is gone
        def __init__(self, k: int) -> None:
            self.k = k

    candidates = [Candidate(k // 300, Member(k), float(k), 60, k % 7 != 0)  # type: ignore[arg-type]
                  for k in range(size)]
    want = [(c.registry, c.member.k, c.score, c.window, c.read_hash) for c in candidates]  # type: ignore[attr-defined]
    first = weakref.ref(candidates[0].member) if candidates else None
    released = _released(candidates)
    del candidates
    got = []
    for k, c in enumerate(released):
        got.append((c.registry, c.member.k, c.score, c.window, c.read_hash))  # type: ignore[attr-defined]
        if k == 1000 and first is not None:
            del c
            gc.collect()
            assert first() is None  # the first chunk, passed, is released
    assert got == want


def _judged(jobs, gaps, declared: bool, without: str | None = None):
    """The families (samples, exemplars) and the entries remembered after ``_simulate``; ``without``:
    a fast path of tracker.py that says "ask the general way" every time (None: as shipped)."""
    from unittest import mock

    from rq_exporter_ng.concerns.timing import tracker as timing_tracker

    timing = timing_with(timing_ttls=(40, 60, 500, 505, 3600, 86_400) if declared else ())
    if without is None:
        _simulate(jobs, gaps, timing)
    else:
        owner, _, name = without.rpartition(".")
        with mock.patch.object(getattr(timing_tracker, owner) if owner else timing_tracker, name, lambda *args: None):
            _simulate(jobs, gaps, timing)
    families = [(f.name, list(f.samples)) for f in timing_families(timing, ["default"])]
    seen = {status: sorted(reg.seen.items()) for status, reg in timing.tracker.queues["default"].registries.items()}
    return families, seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_the_check_made_once_a_score_judges_as_the_check_a_job(jobs, gaps, declared):
    """_judge with plain_range's span (decided once a score) against _judge without it
    (plain_count a job): the same families, samples and exemplars, and the same entries remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="plain_range")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_a_registry_judged_at_once_judges_as_the_loop_a_job(jobs, gaps, declared):
    """plain.py's verdicts (a registry's common case at once, ahead in round 3 or in apply) against
    _judge with its loop alone: the same families, samples and exemplars, and the same entries
    remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="registry_verdict")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_jobs, _gaps, st.booleans())
def test_registries_judged_ahead_in_round_3_judge_as_apply_alone(jobs, gaps, declared):
    """Registries judged as their answers arrive (reads.py's _judge_ahead, their jobs observed in a
    draft) against every registry judged by apply after the read: the same families, samples and
    exemplars, and the same entries remembered."""
    assert _judged(jobs, gaps, declared) == _judged(jobs, gaps, declared, without="Tracker.judge_ahead")


def _news_to_judge_ahead(third: _Batch):
    """A registry past its first scrapes, with 300 finished and 7 failed jobs of RQ's default TTLs
    new at T0 + 12 (plain.py's case), and that scrape's reads up to round 3's answers from
    ``third``: (timing, registries, the scrape's TimingReads). One job, ``b``, was counted before."""
    timing = timing_with()
    regs = Registries()
    for k in range(40):
        regs.end(f"a{k}", T0 + k / 10, ttl=500)
    regs.answer(timing, T0 + 5)  # history: not counted
    regs.end("b", T0 + 6, ttl=500)
    regs.answer(timing, T0 + 8)
    for k in range(300):
        regs.end(f"c{k}", T0 + 9 + k / 100, ttl=500)
    for k in range(7):
        regs.end(f"d{k}", T0 + 9 + k / 2, ttl=31_536_000, status="failed")
    scan = reads(timing)
    second = _Batch()
    scan.second(second, [(b"default", "default")], T0 + 12)
    second.answer(regs)
    scan.third(third)
    return timing, regs, scan


def test_registries_are_judged_ahead_and_a_scrape_failing_after_it_changes_nothing():
    """The common case is judged ahead (so the test above compares something), and the verdicts
    made ahead are kept only by the result: a scrape whose read fails after round 3's answers
    leaves the tracker's memory and the families as they were."""
    third = _Batch()
    timing, regs, scan = _news_to_judge_ahead(third)

    def state():
        registries = timing.tracker.queues["default"].registries.items()
        # ... down to the registries' form: one TTL kept as a pair, no Seen made (RegistryTrack)
        kept = {s: (None if r.remembered is None else sorted(r.remembered.items()), r.one_ttl, r._ttls)
                for s, r in registries}
        return [(f.name, list(f.samples)) for f in timing_families(timing, ["default"])], kept

    before = state()
    third.answer(regs)  # ... and the read fails here: result is never called
    assert [len(v.ended) for _, v in scan.ahead] == [300, 7] and scan.observed == 307
    assert state() == before
    regs.answer(timing, T0 + 12)
    assert totals(timing)["rq_jobs_finished"] == 301 and totals(timing)["rq_jobs_failed"] == 7


@pytest.mark.parametrize(("sent_from", "ahead"), [(0, [300, 7]), (1, [300, 7]), (None, [])])
def test_registries_are_judged_ahead_only_once_the_batch_is_all_sent(sent_from, ahead):
    """While commands are still being sent, the verdicts wait (their work would hold the sending
    back): answers that came before are judged at the first group after it, and a batch whose
    answers all came before leaves its registries to apply. The counts are the same every way."""
    third = _Batch(sent_from)
    timing, regs, scan = _news_to_judge_ahead(third)
    third.answer(regs)
    assert [len(v.ended) for _, v in scan.ahead] == ahead
    # The candidates of the registries judged are let go already; the rest wait for apply.
    assert scan._read is not None and scan._read.count(None) == scan.observed == sum(ahead)
    assert None not in scan._read[scan.observed:]
    kept = sum(1 for score in regs.z["failed"].values() if score < 0)
    result(scan, Snapshot(T0 + 12, queues=(QueueState("default", failed_forever=kept),)))
    assert totals(timing)["rq_jobs_finished"] == 301 and totals(timing)["rq_jobs_failed"] == 7
    assert totals(timing)["timed"] == 308


def test_plain_verdict_takes_the_common_case_and_leaves_the_rest_to_the_loop():
    """What it counts at once, and each thing that sends a registry to the loop, seen untouched;
    what it decided is kept in seen by remember."""
    from rq_exporter_ng.concerns.timing.plain import plain_verdict, remember
    from rq_exporter_ng.concerns.timing.records import Ended, Seen

    score, window, low = 1_800_000_500.0, 500, 1_799_999_990
    ended = 1_800_000_000.25
    cands = [(0, b"a", score, window, True), (0, b"b", score, window, True), (0, b"c", score + 1, window, True)]
    answers = [(ended, ended - 1, ended - 2), (ended + 0.5, ended - 1, ended - 2), (ended + 1, ended, ended)]
    seen = Seen()
    got = plain_verdict("q", "finished", cands, answers, seen, window, low)
    assert got is not None
    assert got.ended == [Ended("q", "finished", b"a", ended, answers[0]),
                         Ended("q", "finished", b"b", ended + 0.5, answers[1]),
                         Ended("q", "finished", b"c", ended + 1, answers[2])]
    assert not seen  # only read
    remember(seen, got)
    assert sorted(seen.items()) == [((b"a", score), score - window), ((b"b", score), score - window),
                                    ((b"c", score + 1), score + 1 - window)]
    nan = float("nan")
    refused = {
        "an answer not compacted": (cands, [answers[0], answers[1], [ended + 1, ended, ended, b"60", None]]),
        "an end time not read": (cands, [answers[0], answers[1], (b"2027-01-15T08:00:01.000000Z", ended, ended)]),
        "an end time NaN": (cands, [answers[0], answers[1], (nan, ended, ended)]),
        "an end time outside its score's span": (cands, [answers[0], answers[1], (ended + 9, ended, ended)]),
        "a hash not read": (cands[:2] + [(0, b"c", score + 1, window, False)], answers),
        "another window": (cands[:2] + [(0, b"c", score + 1, 86_400, True)], answers),
        "an entry twice": (cands[:2] + [(0, b"a", score, window, True)], answers),
        "a score in two runs": (cands + [(0, b"d", score, window, True)], answers + [answers[0]]),
    }
    for why, (some, their_answers) in refused.items():
        seen = Seen()
        assert plain_verdict("q", "finished", some, their_answers, seen, window, low) is None, why
        assert not seen, why
    seen = Seen([((b"b", score), 0.0)])
    assert plain_verdict("q", "finished", cands, answers, seen, window, low) is None  # remembered already
    assert sorted(seen.items()) == [((b"b", score), 0.0)]
