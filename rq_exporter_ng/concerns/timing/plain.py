"""The tracker's common verdict made for a whole registry at once: every candidate counted and timed.

Most registries with news, most scrapes, hold only what ``Tracker._judge``'s loop decides without
asking the rules: candidates of one window whose TTL no other known TTL is near, each with its
hash read and compacted to three float timestamps (rules.read_compact), its end time inside its
score's ``rules.plain_range`` span. Then each is counted as it is, and remembered in ``Seen``
until its "ended at" second. ``judge_plain`` checks that for the whole registry with one C call
a check (and one ``plain_range`` a score), then makes the jobs' records with one ``zip``,
rather than seven checks and a named tuple a job in Python (15,000 jobs a scrape at 1,000 jobs/s). When
anything is otherwise, it changes nothing and says None, and the loop judges each candidate.
tests/concerns/timing/test_timing_tracker.py checks both ways give the same families and memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby, repeat
from math import isfinite
from operator import itemgetter
from typing import cast

from rq_exporter_ng.concerns.timing.records import Candidate, Ended, Seen
from rq_exporter_ng.concerns.timing.rules import plain_range

_MEMBER, _SCORE, _WINDOW, _READ = itemgetter(1), itemgetter(2), itemgetter(3), itemgetter(4)  # of a Candidate
_ENDED = itemgetter(0)  # of a compacted answer


def judge_plain(queue: str, status: str, candidates: Sequence[Candidate], answers: Sequence,
                seen: Seen, window: int, window_low: int) -> list[Ended] | None:
    """The jobs ended, in the candidates' order, each remembered in ``seen``; None, ``seen``
    unchanged, unless every candidate is of ``window`` (starting at ``window_low``, in "ended at"
    seconds), has its answer (in ``answers``, one a candidate) and is counted without a question.
    The jobs are plain tuples in ``Ended``'s order (as records.Candidate, some are)."""
    whens = list(map(_ENDED, answers)) if set(map(type, answers)) == {tuple} else None
    # (a NaN or an infinity makes the sum one: never in a span, the loop says so)
    if (whens is None or set(map(len, answers)) != {3} or set(map(type, whens)) != {float} or not isfinite(sum(whens))
            or set(map(_WINDOW, candidates)) != {window} or set(map(_READ, candidates)) != {True}):
        return None
    members = list(map(_MEMBER, candidates))
    remember: dict[float, dict[bytes, float]] = {}  # score -> its members, each remembered until score - window
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
        if len(kept) != end - start or score in remember or not known.keys().isdisjoint(kept):
            return None  # an entry twice, or remembered already: the loop skips it
        remember[score] = kept
        start = end
    for score, kept in remember.items():
        bucket = seen.at(score, True)
        assert bucket is not None
        bucket.update(kept)
    return cast(list[Ended], list(zip(repeat(queue), repeat(status), members, whens, answers)))
