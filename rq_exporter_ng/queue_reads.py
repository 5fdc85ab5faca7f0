"""A queue's 13 values and the reads that get them, with its empty keys asked about in one EXISTS.

Most of a queue's keys are empty most of the time: the intermediate list, the started, deferred,
scheduled and canceled registries, and the finished one of a queue idle for its result TTL. A
key that read empty (a length of 0) at the previous scrape is not read again. One ``EXISTS`` of
all such keys of the queue stands in for their reads: 0 means each is still empty, which is
exactly what the reads would give (a missing key reads as 0). Anything else, and they are read
in round 3, together (no figure is read in two halves). An idle queue costs 5 commands instead
of 13; a key is read again from the scrape after it was found (``Quiet.learn``). The memory is a
hint for the shape of the reads and never a value: the values and problems are those of the full
reads, whatever it holds (a problem of a key read in round 3 is reported after round 2's). In the
one scrape where a key reappears its values are read a round later than the rest of its queue's,
as a key read late in round 2 is read later than the first ones.

The failed registry is always read: its two counts leave out the expired entries, so 0 does not
mean the key is gone, and an EXISTS would send it to round 3 every scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from operator import itemgetter

import redis

from rq_exporter_ng.keys import Keys

log = logging.getLogger(__name__)

# The values of one queue, in order: a queue's replies are spread into this order.
QUEUE_VALUES = (
    "queued", "intermediate", "head",
    "started_all", "started_expired", "finished_all", "finished_expired", "failed_forever", "failed_live",
    "deferred", "scheduled", "canceled", "overdue_scheduled",
)
# The keys that can be left out when empty: (the values they give, the first being their length).
PARTS = (
    ("intermediate", "intermediate"),
    ("started", "started_all", "started_expired"),
    ("finished", "finished_all", "finished_expired"),
    ("deferred", "deferred"),
    ("scheduled", "scheduled", "overdue_scheduled"),
    ("canceled", "canceled"),
)
_SLOTS = [tuple(QUEUE_VALUES.index(value) for value in part[1:]) for part in PARTS]
# The value that says whether a part's key was empty: its length (LLEN, ZCARD).
_LENGTHS = itemgetter(*(slots[0] for slots in _SLOTS))


def reads(raw: bytes, keys: Keys, now: float) -> list[tuple]:
    """The 13 reads of one queue, in QUEUE_VALUES order."""
    p = keys.per_queue
    # A registry entry whose score (its expiry) lies in [0, now] is what RQ's cleanup would
    # remove; negative scores (failure_ttl=-1) are never cleaned, hence 0 and not -inf.
    expiry = int(now)
    queue_key = p["queue"] + raw
    wip, finished, failed, scheduled = p["wip"] + raw, p["finished"] + raw, p["failed"] + raw, p["scheduled"] + raw
    return [
        ("LLEN", queue_key),
        ("LLEN", keys.intermediate(raw)),
        ("LINDEX", queue_key, 0),
        ("ZCARD", wip), ("ZCOUNT", wip, 0, expiry),
        ("ZCARD", finished), ("ZCOUNT", finished, 0, expiry),
        # Failed: those kept forever (score -1) apart, for job timing; the rest that is not expired.
        ("ZCOUNT", failed, "-inf", "(0"), ("ZCOUNT", failed, f"({expiry}", "+inf"),
        ("ZCARD", p["deferred"] + raw),
        ("ZCARD", scheduled),
        ("ZCARD", p["canceled"] + raw),
        ("ZCOUNT", scheduled, "-inf", f"({expiry}"),
    ]


class Shape:
    """The reads of a queue whose ``quiet`` parts (a bitmask over PARTS) are asked about by EXISTS.

    ``reads`` are the 13 reads less the quiet parts', in order, then the EXISTS; ``spread`` puts
    their replies in QUEUE_VALUES order, the EXISTS' reply in each quiet value (0 when their keys
    are all still empty); ``later`` are the quiet parts' reads, for round 3, and ``fill`` puts
    their replies in place."""

    __slots__ = ("_direct_lengths", "_getter", "_later", "_later_slots", "quiet", "size")

    def __init__(self, quiet: int) -> None:
        self.quiet = quiet
        later = [slot for bit, slots in enumerate(_SLOTS) if quiet >> bit & 1 for slot in slots]
        kept = [slot for slot in range(len(QUEUE_VALUES)) if slot not in later]
        self.size = len(kept) + (1 if quiet else 0)
        where = {slot: i for i, slot in enumerate(kept)}
        self._getter = itemgetter(*(where.get(slot, self.size - 1) for slot in range(len(QUEUE_VALUES))))
        self._later_slots = tuple(sorted(later))
        self._later = frozenset(later)
        # Where the lengths of the parts read in round 2 are.
        self._direct_lengths = tuple(slots[0] for bit, slots in enumerate(_SLOTS) if not quiet >> bit & 1)

    def reads(self, raw: bytes, keys: Keys, now: float) -> list[tuple]:
        everything = reads(raw, keys, now)
        if not self.quiet:
            return everything
        return [read for slot, read in enumerate(everything) if slot not in self._later] + [
            ("EXISTS", *(everything[slots[0]][1] for bit, slots in enumerate(_SLOTS) if self.quiet >> bit & 1))]

    def spread(self, own: Sequence) -> tuple:
        """One queue's replies in QUEUE_VALUES order, each quiet value the last reply's (the
        EXISTS' 0, or what the caller put there until round 3 reads them). The reader takes the
        full shape's replies as they are."""
        return self._getter(own)

    def quiet_after(self, values: Sequence, filled: bool) -> int:
        """The parts found empty by this read, its values in QUEUE_VALUES order; ``filled``: its
        quiet parts were read in round 3. Mostly what was quiet stays so and the rest is there."""
        if filled or 0 in [values[at] for at in self._direct_lengths]:
            return quiet_of(values)
        return self.quiet

    def later(self, raw: bytes, keys: Keys, now: float) -> list[tuple]:
        everything = reads(raw, keys, now)
        return [everything[slot] for slot in self._later_slots]

    def fill(self, values: Sequence, replies: Sequence) -> list:
        """``values`` with the quiet ones replaced by round 3's ``replies``."""
        out = list(values)
        for slot, reply in zip(self._later_slots, replies):
            out[slot] = reply
        return out


SHAPES = tuple(Shape(quiet) for quiet in range(1 << len(PARTS)))
FULL = SHAPES[0]


def quiet_of(values: Sequence) -> int:
    """The parts of a queue whose key was read empty (a length of 0, not an error)."""
    lengths = _LENGTHS(values)
    quiet = 0
    for bit, length in enumerate(lengths):
        if length == 0:
            quiet |= 1 << bit
    return quiet


class Quiet:
    """Each queue's parts read empty at the previous scrape. A refused EXISTS (an ACL user made
    before it was needed) turns this off for good: every key read, as before, and one line said.
    Any other error reply to an EXISTS (Redis busy with a script, say) costs only that scrape's
    round-3 reads."""

    def __init__(self) -> None:
        self._by_queue: dict[bytes, int] = {}
        self.refused = False

    def shape(self, raw: bytes) -> Shape:
        return SHAPES[self._by_queue.get(raw, 0)]

    def error(self, error: Exception) -> None:
        """The first error reply to an EXISTS this scrape (their keys are read in round 3 all the
        same: no data is skipped, so it is no problem of the scrape's)."""
        if isinstance(error, redis.exceptions.NoPermissionError) and not self.refused:
            log.warning("Redis refused EXISTS (%s): from now on every key of every queue is read; the "
                        "README's read-only ACL user allows it", error)
            self.refused = True
            self._by_queue = {}

    def learn(self, queues: Iterable[tuple[bytes, Shape, bool, Sequence]]) -> None:
        """Per queue (its name, the shape it was read in, whether round 3 read its quiet parts, its
        values): the parts read empty this scrape. Queues no longer read are forgotten. (Not
        called once refused.)"""
        self._by_queue = {raw: shape.quiet_after(values, filled) for raw, shape, filled, values in queues}
