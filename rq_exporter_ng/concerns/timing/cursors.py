"""How one registry's tracking moves past a scrape that read it: the last step of ``Tracker.apply``.

Its TTLs' cursors move to the scrape's second (a catching-up TTL only as far as its backlog was
read), the remembered entries no window can return again are forgotten, the sweep and the probe
go on, and the count of jobs kept forever is compared with the last one. A registry not read
(its counts did not add up, ranked.py) stays as it was and is read with its scores from then on.
tests/concerns/timing/test_timing_idle.py checks this against the plain loop over every window.
"""

from __future__ import annotations

from collections.abc import Mapping

from rq_exporter_ng.concerns.timing.ranked import SCORED_FOR
from rq_exporter_ng.concerns.timing.records import RegistryPlan, RegistryReply, RegistryTrack, Selection


def move_on(registry: RegistryTrack, planned: RegistryPlan, reply: RegistryReply | None, index: int,
            selection: Selection, now: int, failed_forever: Mapping[str, int | None], edge: int) -> int:
    """``registry`` (planned as ``planned``, ``index`` in the plan) moved past this scrape; returns how
    many more jobs it keeps forever than it did (0 when not known). ``edge``: the seconds a window
    reaches back before its cursor (Tracker.edge)."""
    if reply is None:  # not read (its counts did not add up, ranked.py): as it was, and scores read next
        registry.scored = SCORED_FOR
        registry.compact()
        return 0
    if registry.scored:
        registry.scored -= 1
    windows = planned.windows
    deferred = selection.deferred.get(index) if selection.deferred else None
    if len(windows) == 1 and deferred is None and (registry.remembered is None or not registry.remembered):
        # ``_move_cursors`` of one window with nothing remembered (most registries, most scrapes)
        ttl = registry.one_class if registry.one_ttl == windows[0].ttl else registry.ttls[windows[0].ttl]
        assert ttl is not None
        if ttl.cursor < now or ttl.catching_up:
            ttl.cursor, ttl.catching_up = max(ttl.cursor, now), False
    else:
        _move_cursors(registry, planned, now, deferred, edge)
    if registry.one_ttl is None:
        registry.compact()  # made a dict this scrape (select, judge, learn): done with it
    if planned.sweep is not None:
        registry.advance_sweep(planned.sweep, reply.sweep, selection.sweep_afforded.get(index))
    if reply.probe_found is not None:
        registry.settled = not reply.probe_found
    forever = reply.forever if planned.status == "finished" else failed_forever.get(planned.queue)
    if forever is None:
        return 0
    previous = registry.forever
    registry.forever = forever
    return forever - previous if previous is not None and forever > previous else 0


def _move_cursors(reg: RegistryTrack, rp: RegistryPlan, n: int, deferred: Mapping[int, float] | None,
                  edge: int) -> None:
    # (a window's TTL was known before this scrape, so it is never one learned in it)
    for w in rp.windows:
        ttl = reg.ttls[w.ttl]
        if deferred and w.ttl in deferred:
            ttl.cursor = max(ttl.cursor, int(deferred[w.ttl]))
        elif ttl.cursor < n or ttl.catching_up:
            ttl.cursor, ttl.catching_up = max(ttl.cursor, n), False
    if reg.remembers:
        # Keep what a window may return again: a catching-up window starts further back.
        keep = min([n, *(c.cursor for c in reg.ttls.values() if c.catching_up)]) - edge
        reg.seen.forget_before(keep)
