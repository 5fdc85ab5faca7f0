"""A busy registry's window read by counts of its whole seconds, not with its scores.

Redis 7.0 formats each score of a WITHSCORES reply with ``%.17g``, ~0.45 us a score (7.2 writes
a whole-number score with ll2string, redis/redis#11779: there this read saves little): at 1,000
jobs/s over 20 queues a scrape's windows hold ~25,000 entries, their overlap with the previous
scrape's included, and Redis spent ~10-16 ms on them while the exporter waited
(docs/benchmarks.md, session 10). RQ's registry scores are whole seconds (an end
second plus a TTL), so a window's entries come as, in one group:

    ZCOUNT key s s                                  for each second s of [low, count_to]
    ZRANGEBYSCORE key low count_to                  its members, in score order
    ZCOUNT key s s                                  again
    ZRANGEBYSCORE key (count_to <top> WITHSCORES    what lies above: as the one read had it

(``count_to`` stops short of the seconds jobs are ending in as the scrape reads: they come with
their scores.)

When both counts agree and add up to the members, second s's members are the next ``count`` of
them, and the entries are those of the one WITHSCORES read, in its order, one float a second.
Otherwise (a score that is not a whole second, or the registry changed while it was read: Redis
serves other clients between two parts of a long pipeline) the registry is not read this scrape
(``UNREAD``): the tracker leaves its cursors where they were and reads it with its scores from
then on (``RegistryTrack.scored``), so its jobs are counted a scrape later, none lost or counted
twice. tests/concerns/timing/test_timing_ranked.py checks both reads give the same entries.

Worth it only for a window with many entries a second: ``count_to`` decides, from how many entries
the registry remembers (the previous scrape's overlap, which this one reads again).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import filterfalse, repeat
from typing import Any

from rq_exporter_ng.concerns.timing.records import Entry, RegistryPlan, Seen

# Two ZCOUNTs a second cost Redis ~2.5 us and this process ~1 us (packing, replies); a score that
# is not formatted saves Redis ~0.45 us and this process ~0.1 us: counts pay from a few entries a
# second, and 8 leaves a margin (a registry's entries are not spread evenly).
MIN_PER_SECOND = 8
MAX_SECONDS = 600  # a longer window (scrapes 10 minutes apart) is read with its scores

UNREAD = object()  # what ``read`` gives when the counts do not add up
FRESH = 2  # the last seconds, where jobs are ending as the scrape reads: read with their scores
SCORED_FOR = 60  # scrapes a registry whose counts did not add up is read with its scores, then tried again


def count_to(low: int, high: int, now: int, ttl: int, remembered: int) -> int | None:
    """The last second a window [low, high] is read by counts to, or None: read with its scores.
    Jobs end while the scrape reads, and a busy registry gets entries at ``now + ttl`` and the next
    second (the one before, from a worker whose clock is a second behind) between any two of its
    reads: those ``FRESH`` + 1 seconds, and any above up to ``high``, come with their scores in the
    read above, so that a job ending does not make the counts disagree."""
    top = min(now + ttl - FRESH, high)
    seconds = top - low + 1
    if type(low) is not int or not 0 < seconds <= MAX_SECONDS or remembered < MIN_PER_SECOND * seconds:
        return None
    return top


def commands(rp: RegistryPlan, key: bytes, top: str) -> list[tuple]:
    """The group of reads of ``rp``'s one window (``top``: where the window's read ends, as
    windows.WINDOW_TOP says), in the order ``read`` expects their replies."""
    low, last = rp.windows[0].low, rp.count_to
    assert last is not None
    counts = [("ZCOUNT", key, s, s) for s in range(low, last + 1)]
    return [*counts, ("ZRANGEBYSCORE", key, low, last), *counts,
            ("ZRANGEBYSCORE", key, f"({last}", top, "WITHSCORES")]


def size(rp: RegistryPlan) -> int:
    """How many commands ``commands`` gives."""
    assert rp.count_to is not None
    return 2 * (rp.count_to - rp.windows[0].low + 1) + 2


def read(rp: RegistryPlan, replies: Sequence[Any], seen: Seen | None = None) -> list[Entry] | object | None:
    """The window's entries up to ``count_to``, as (member, score) in Redis' order, one float
    object a second (the tracker compares a second's scores by identity), less those ``seen``
    remembers; None when a read was an error reply (a key that is not a sorted set: as the one
    read's error); ``UNREAD`` when the counts do not add up. The read above is the caller's (the
    last reply: a WITHSCORES reply).

    ``seen`` is left out a second at a time, in C (``filterfalse`` over the members of one score):
    the window re-reads the previous scrape's overlap, ~12 s of a busy registry's entries, and
    ``Seen.unseen`` over them, an entry at a time, was ~60 % of this read's time (docs/benchmarks.md,
    session 12). tests/concerns/timing/test_timing_ranked.py checks it equals ``seen.unseen``."""
    low, last = rp.windows[0].low, rp.count_to
    assert last is not None
    k = last - low + 1
    before, members, after = replies[:k], replies[k], replies[k + 1:2 * k + 1]
    if type(members) is not list or None in before or replies[-1] is None:
        return None
    if before != after or sum(before) != len(members):
        return UNREAD
    if set(map(type, members)) != {bytes}:  # hiredis' are bytes already
        members = list(map(bytes, members))
    at_score = seen.at if seen else None
    out: list[Entry] = []
    at = 0
    for second, count in zip(range(low, last + 1), before):
        if count:
            score, chunk = float(second), members[at:at + count]
            at += count
            if at_score is not None and (remembered := at_score(score)):
                chunk = list(filterfalse(remembered.__contains__, chunk))
            out += zip(chunk, repeat(score, len(chunk)))
    return out
