"""The tracker's short cuts for idle registries (tracker.py's ``plan`` and cursors.py's ``move_on`` without a
call for one TTL, records.py's ``Seen`` made on first use) against the straightforward versions
they replaced, on states and replies hypothesis makes up."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng.concern import taken
from rq_exporter_ng.concerns.timing.cursors import move_on
from rq_exporter_ng.concerns.timing.job_timing import TimingOptions
from rq_exporter_ng.concerns.timing.ranked import SCORED_FOR
from rq_exporter_ng.concerns.timing.records import (
    NOTHING_NEW,
    NOTHING_NEW_UNCOUNTED,
    Probe,
    QueueTrack,
    RegistryPlan,
    RegistryReply,
    RegistryTrack,
    Selection,
    TtlClass,
    Window,
)
from rq_exporter_ng.concerns.timing.tracker import REGISTRIES, Tracker
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings

NOW = 1_800_000_000


def tracker(**settings) -> Tracker:
    return Tracker(taken(TimingOptions, Settings(**settings)), Keys("rq"))


def reference_plan_registries(tr: Tracker, queues, now) -> list[RegistryPlan]:
    """``Tracker.plan``'s registries as it made them before its one-TTL short cut (sweep aside)."""
    n, edge = int(now), tr.edge
    plans = []
    for raw, name in queues:
        track = tr.queues[name]
        for status in REGISTRIES:
            reg = track.registries[status]
            windows = tuple(Window(t, max(c.cursor - edge, track.floor) + t, n + edge + t) for t, c in reg.ttls.items())
            probe = Probe.ALONE
            if reg.settled and windows:
                probe = Probe.IN_WINDOW_WITH_FOREVER if status == "finished" and reg.forever == 0 else Probe.IN_WINDOW
            plans.append(RegistryPlan(name, raw, status, windows, probe, windows[-1].high if windows else n, None))
    return plans


ttl_sets = st.dictionaries(st.sampled_from([60, 500, 86_400, 31_536_000]),
                           st.tuples(st.integers(NOW - 2_000, NOW + 10), st.booleans()), max_size=3)
# (TTL -> (cursor, catching up), settled, kept forever, its TTLs as a dict even if one)
registries = st.tuples(ttl_sets, st.booleans(), st.sampled_from([None, 0, 3]), st.booleans())


def track_of(floor: int, finished, failed) -> QueueTrack:
    track = QueueTrack(floor=floor)
    for status, (ttls, settled, forever, as_dict) in (("finished", finished), ("failed", failed)):
        classes = {t: TtlClass(*ttls[t]) for t in sorted(ttls)}
        reg = track.registries[status] = RegistryTrack(classes, forever=forever)
        assert (reg.one_ttl is not None) == (len(ttls) == 1) and reg.ttls == classes
        reg.compact()
        if as_dict:
            assert reg.ttls == classes and reg.one_ttl is None  # as select leaves it
        reg.settled = settled
    return track


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=300, deadline=None)
@given(queues=st.lists(st.tuples(st.integers(NOW - 3_000, NOW), registries, registries), max_size=6),
       now=st.floats(NOW, NOW + 100), slack=st.integers(0, 30))
def test_the_plan_is_the_straightforward_one(queues, now, slack):
    tr = tracker(timing_clock_slack=slack, timing_discovery_per_scrape=0)
    named = []
    for i, (floor, finished, failed) in enumerate(queues):
        name = f"q{i}"
        tr.queues[name] = track_of(floor, finished, failed)
        named.append((name.encode(), name))
    plan = tr.plan(named, now)
    assert list(plan.registries) == reference_plan_registries(tr, named, now)
    assert all(type(w.low) is int and type(w.high) is int for rp in plan.registries for w in rp.windows)


def reference_move_on(tr: Tracker, registry: RegistryTrack, planned, reply, index, selection, now,
                      failed_forever) -> int:
    """``cursors.move_on`` as it was before the one-window short cut;
    a registry not read (None: its counts did not add up, ranked.py) stays as it was."""
    if reply is None:
        registry.scored = SCORED_FOR
        return 0
    if registry.scored:
        registry.scored -= 1
    deferred = selection.deferred.get(index) if selection.deferred else None
    for w in planned.windows:
        ttl = registry.ttls[w.ttl]
        if deferred and w.ttl in deferred:
            ttl.cursor = max(ttl.cursor, int(deferred[w.ttl]))
        elif ttl.cursor < now or ttl.catching_up:
            ttl.cursor, ttl.catching_up = max(ttl.cursor, now), False
    if registry.seen:
        keep = min([now, *(c.cursor for c in registry.ttls.values() if c.catching_up)]) - tr.edge
        registry.seen.forget_before(keep)
    if planned.sweep is not None:
        registry.advance_sweep(planned.sweep, reply.sweep, selection.sweep_afforded.get(index))
    if reply.probe_found is not None:
        registry.settled = not reply.probe_found
    forever = reply.forever if planned.status == "finished" else failed_forever.get(planned.queue)
    if forever is None:
        return 0
    grown = forever - registry.forever if registry.forever is not None and forever > registry.forever else 0
    registry.forever = forever
    return grown


def _state(reg: RegistryTrack) -> tuple:
    return ({t: (c.cursor, c.catching_up) for t, c in reg.ttls.items()}, sorted(reg.seen.items()) if reg.remembers
            else [], reg.sweep_from, reg.sweep_skip, reg.forever, reg.settled, reg.scored)


replies = st.sampled_from([None, NOTHING_NEW, NOTHING_NEW_UNCOUNTED, RegistryReply({}, (), True, (), 2),
                           RegistryReply({}, (), None, ((b"m", 5.0),) * 20, None)])


@pytest.mark.slow  # a property test of 6-12 s on Python 3.10 alone, 53 s once under the compat run's load
@settings(max_examples=300, deadline=None)
@given(finished=registries, status=st.sampled_from(REGISTRIES), reply=replies,
       seen=st.lists(st.tuples(st.sampled_from([b"a", b"b"]), st.integers(NOW - 100, NOW), st.integers(NOW - 50, NOW)),
                     max_size=3),
       deferred=st.sampled_from([{}, {0: {500: NOW - 7.5}}, {1: {500: NOW - 7.5}}]),
       sweep=st.sampled_from([None, (5.0, 0)]), failed_forever=st.sampled_from([{}, {"q": 0}, {"q": 9}]),
       now=st.integers(NOW - 5, NOW + 30), scored=st.sampled_from([0, 1, SCORED_FOR]))
def test_moving_on_is_the_straightforward_way(finished, status, reply, seen, deferred, sweep, failed_forever, now,
                                              scored):
    tr = tracker()
    ttls = finished[0] or {500: (NOW - 15, False)}
    track = track_of(NOW - 1_000, (ttls, *finished[1:]), (ttls, *finished[1:]))
    as_dict = track.registries[status].one_ttl is None
    registry = track.registries[status]
    registry.scored = scored
    for member, score, until in seen:
        registry.seen[(member, float(score))] = until
    windows = tuple(Window(t, 0, 1) for t in registry.ttls)
    planned = RegistryPlan("q", b"q", status, windows, Probe.IN_WINDOW, 1, sweep)
    selection = Selection((), {}, deferred)
    expected_registry = copy.deepcopy(registry)
    tr.queues["q"] = track
    got = move_on(registry, planned, reply, 0, selection, now, failed_forever, tr.edge)
    expected = reference_move_on(tr, expected_registry, planned, reply, 0, selection, now, failed_forever)
    if as_dict:
        assert registry.one_ttl is not None or len(registry.ttls) > 1  # compact again
    assert (got, _state(registry)) == (expected, _state(expected_registry))


def test_a_registry_of_one_ttl_keeps_it_as_a_pair_and_makes_the_dict_when_asked():
    one = TtlClass(5)
    registry = RegistryTrack({500: one})
    assert (registry.one_ttl, registry.one_class) == (500, one)
    assert registry.ttls == {500: one} and registry.one_ttl is None  # made when asked, kept until compact()
    registry.ttls[60] = TtlClass(7)  # as _learn does
    registry.compact()
    assert registry.one_ttl is None and sorted(registry.ttls) == [60, 500]
    registry.ttls = {500: one}
    registry.compact()
    assert (registry.one_ttl, registry.one_class) == (500, one) and registry.ttls == {500: one}


def test_a_registrys_seen_is_made_on_first_use():
    registry = RegistryTrack()
    assert not registry.remembers and registry.remembered is None
    seen = registry.seen
    assert registry.seen is seen and not registry.remembers
    seen[(b"a", 1.0)] = math.inf
    assert registry.remembers and (b"a", 1.0) in registry.seen
