"""The tracker's common verdict made for a whole registry at once: every candidate counted and timed.

Most registries with news, most scrapes, hold only what ``Tracker._judge``'s loop decides without
asking the rules: candidates of one window whose TTL no other known TTL is near, each with its
hash read and compacted to three float timestamps (rules.read_compact), its end time inside its
score's ``rules.plain_range`` span. Then each is counted as it is, and remembered in ``Seen``
until its "ended at" second. ``plain_verdict`` checks that for the whole registry with one C call
a check (and one ``plain_range`` a score), then makes the jobs' records with one ``zip``,
rather than seven checks and a named tuple a job in Python (15,000 jobs a scrape at 1,000 jobs/s). When
anything is otherwise, it says None, and the loop judges each candidate. It only reads the
tracker, so job timing makes it as a registry's answers arrive in round 3 (reads.py,
``Tracker.judge_ahead``) and ``Tracker.apply`` keeps it (``remember``) after the read.
tests/concerns/timing/test_timing_tracker_fast_paths.py checks both ways give the same families and memory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby, repeat
from math import isfinite
from operator import itemgetter
from typing import NamedTuple, cast

from rq_exporter_ng.concerns.timing.records import Candidate, Ended, RegistryPlan, RegistryTrack, Seen
from rq_exporter_ng.concerns.timing.rules import TOLERANCE, plain_range

_MEMBER, _SCORE, _WINDOW, _READ = itemgetter(1), itemgetter(2), itemgetter(3), itemgetter(4)  # of a Candidate
_ENDED = itemgetter(0)  # of a compacted answer


class PlainVerdict(NamedTuple):
    ended: list[Ended]  # in the candidates' order: plain tuples in ``Ended``'s order (as records.Candidate, some are)
    remember: dict[float, dict[bytes, float]]  # score -> its members, each remembered until score - window


def remember(seen: Seen, verdict: PlainVerdict) -> None:
    """What ``plain_verdict`` decided, kept: its jobs remembered in ``seen``."""
    for score, kept in verdict.remember.items():
        seen.add(score, kept)


def plain_verdict(queue: str, status: str, candidates: Sequence[Candidate], answers: Sequence,
                  seen: Seen, window: int, window_low: int) -> PlainVerdict | None:
    """The jobs ended, in the candidates' order, and the members to remember (``remember`` keeps
    them in ``seen``, which is only read here); None unless every candidate is of ``window``
    (starting at ``window_low``, in "ended at" seconds), has its answer (in ``answers``, one a
    candidate) and is counted without a question."""
    whens = list(map(_ENDED, answers)) if set(map(type, answers)) == {tuple} else None
    # (a NaN or an infinity makes the sum one: never in a span, the loop says so)
    if (whens is None or set(map(len, answers)) != {3} or set(map(type, whens)) != {float} or not isfinite(sum(whens))
            or set(map(_WINDOW, candidates)) != {window} or set(map(_READ, candidates)) != {True}):
        return None
    members = list(map(_MEMBER, candidates))
    by_score: dict[float, dict[bytes, float]] = {}
    start = 0
    for score, run in groupby(map(_SCORE, candidates)):
        end = start + len(list(run))
        span = plain_range(window, window_low, score)
        if span is None:
            return None
        ended = whens[start:end]
        if min(ended) < span[0] or max(ended) >= span[1]:
            return None
        kept = dict.fromkeys(members[start:end], score - window)
        known = seen.at(score) or {}
        if len(kept) != end - start or score in by_score or not known.keys().isdisjoint(kept):
            return None  # an entry twice, or remembered already: the loop skips it
        by_score[score] = kept
        start = end
    return PlainVerdict(cast(list[Ended], list(zip(repeat(queue), repeat(status), members, whens, answers))), by_score)


def registry_verdict(planned: RegistryPlan, registry: RegistryTrack, candidates: Sequence[Candidate],
                     answers: Sequence) -> PlainVerdict | None:
    """``plain_verdict`` on one registry's candidates (each read: ``answers``) when their window's
    TTL is alone; the registry only read, even in its form (the caller knows no TTL of it was
    learned this scrape: the tracker has not changed since the plan)."""
    window = candidates[0][3]  # (registry, member, score, window, read_hash); None: the probe's, the sweep's
    low = None if window is None else {w.ttl: w.low - w.ttl for w in planned.windows}.get(window)  # "ended at" s
    if window is None or low is None or window not in alone_ttls(registry.ttls_read):
        return None
    seen = registry.remembered if registry.remembered is not None else Seen()
    return plain_verdict(planned.queue, planned.status, candidates, answers, seen, window, low)


def alone_ttls(ttls: Iterable[int]) -> set[int]:
    """The TTLs no other is near: for those, plain_count decides most entries on its own."""
    ttls = list(ttls)
    return {t for t in ttls if all(abs(t - u) > 2 * TOLERANCE for u in ttls if u != t)}
