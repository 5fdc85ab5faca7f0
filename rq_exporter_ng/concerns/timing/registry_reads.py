"""Round 2 of job timing, per registry: the reads of its plan, and what their answers say.

A registry's reads are a ZRANGEBYSCORE per known TTL window, the probe above the longest TTL (in
the last window's read once the registry is settled, else on its own), a sweep chunk in turn, and
for the finished registry the count of the jobs kept forever unless the probe's read counts them.
Most registries on most scrapes are settled with one TTL: their one read (``one_read``) is packed
from a template many a group (windows.py), and its empty answer is read by ``idle_reply``.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from operator import itemgetter
from typing import Any

from rq_exporter_ng.concerns.timing.records import (
    NOTHING_NEW,
    NOTHING_NEW_UNCOUNTED,
    SWEEP_CHUNK,
    Entry,
    Probe,
    RegistryPlan,
    RegistryReply,
    Seen,
)
from rq_exporter_ng.concerns.timing.tracker import PROBE_CHUNK
from rq_exporter_ng.concerns.timing.windows import WINDOW_TOP, window_read

# Finished jobs kept forever (result_ttl=-1) have the score +inf. Failed ones (failure_ttl=-1, score
# -1) are counted by the reader, which reads the failed registry's negative scores apart anyway.
FOREVER = ("+inf", "+inf")
_SCORE = itemgetter(1)  # of an entry


def commands(rp: RegistryPlan, key: bytes) -> list[tuple]:
    """The reads of one registry, in the order ``full_reply`` expects their answers."""
    if one_read(rp):
        return [window_read(rp, key)]
    out: list[tuple] = [("ZRANGEBYSCORE", key, w.low, w.high, "WITHSCORES") for w in rp.windows]
    if rp.probe is Probe.ALONE:
        out.append(("ZRANGEBYSCORE", key, f"({rp.probe_above}", "(inf", "WITHSCORES", "LIMIT", 0, PROBE_CHUNK))
    else:
        out[-1] = ("ZRANGEBYSCORE", key, rp.windows[-1].low, WINDOW_TOP[rp.probe], "WITHSCORES")
    if rp.sweep is not None:
        start, skip = rp.sweep
        out.append(("ZRANGEBYSCORE", key, repr(start), "(inf", "WITHSCORES", "LIMIT", skip, SWEEP_CHUNK))
    if _counts_forever(rp):
        out.append(("ZCOUNT", key, *FOREVER))
    return out


def one_read(rp: RegistryPlan) -> bool:
    """Whether the registry's reads are its one window's, the probe above it riding in it: most
    registries on most scrapes (windows.py packs them many a group)."""
    # (probe not ALONE and not _counts_forever(rp), without the call: checked on every registry)
    return len(rp.windows) == 1 and rp.sweep is None and (
        rp.probe is Probe.IN_WINDOW_WITH_FOREVER or (rp.probe is Probe.IN_WINDOW and rp.status != "finished"))


def _counts_forever(rp: RegistryPlan) -> bool:
    return rp.status == "finished" and rp.probe is not Probe.IN_WINDOW_WITH_FOREVER


def idle_reply(rp: RegistryPlan, replies: list) -> RegistryReply | None:
    """What ``full_reply`` makes of a settled registry with nothing new, the answer of most
    registries on most scrapes, without walking its answers; None for any other.
    tests/concerns/timing/test_timing_redis.py checks both agree."""
    if rp.sweep is not None or len(rp.windows) != 1 or replies[0] != []:
        return None
    if rp.probe is Probe.IN_WINDOW_WITH_FOREVER:
        return NOTHING_NEW
    if rp.probe is Probe.IN_WINDOW:
        if rp.status == "failed":
            return NOTHING_NEW_UNCOUNTED
        if type(replies[1]) is int:
            return RegistryReply({}, (), False, (), replies[1])
    return None


def full_reply(rp: RegistryPlan, replies: list, seen: Container[Entry] = ()) -> RegistryReply:
    """``seen``: entries the tracker remembers (``RegistryTrack.seen``), which its selection skips:
    left out of the windows' entries here, so that a scrape does not hold the windows' overlap
    with the previous scrape (at 5,000 jobs/s, 60,000 entries) until the selection."""
    answers = iter(replies)
    found: dict[int, list[Entry]] = {}
    for w in rp.windows[:-1]:
        if entries := _unseen(_entries(next(answers)), seen):
            found[w.ttl] = entries
    probe: Sequence[Entry] = ()
    probe_found: bool | None = None
    forever: int | None = None
    if rp.windows:
        answer = next(answers)
        entries = _entries(answer)
        if rp.probe is not Probe.ALONE and answer is not None:
            # Sorted by score: the window's own entries, then the probe's, then the kept-forever.
            top = rp.windows[-1].high
            cut = len(entries)
            if entries and not max(map(_SCORE, entries)) <= top:  # (in C: nothing above, most replies)
                cut = next((i for i, (_, score) in enumerate(entries) if score > top), cut)
            finite = [entry for entry in entries[cut:] if entry[1] != math.inf]
            probe, probe_found = finite[:PROBE_CHUNK], bool(finite)
            if rp.probe is Probe.IN_WINDOW_WITH_FOREVER:
                forever = len(entries) - cut - len(finite)
            entries = entries[:cut]
        if entries := _unseen(entries, seen):
            found[rp.windows[-1].ttl] = entries
    if rp.probe is Probe.ALONE:
        answer = next(answers)
        if answer is not None:
            probe = _entries(answer)
            probe_found = bool(probe)
    sweep = _entries(next(answers)) if rp.sweep is not None else []
    if _counts_forever(rp):
        answer = next(answers)
        forever = answer if isinstance(answer, int) else None
    return RegistryReply(found, probe, probe_found, sweep, forever)


def _entries(answer: list | None) -> list[Entry]:
    """A WITHSCORES reply -> [(member, score)]: RESP2 sends it flat, RESP3 as pairs."""
    if not answer:
        return []
    try:
        if isinstance(answer[0], list | tuple):
            return [(bytes(member), float(score)) for member, score in answer]
        # Pairs (an odd last element dropped). Each score read once (a second's jobs share it) and
        # the pairs zipped in C: ~2x quicker than a comprehension a pair, for every entry of the
        # windows, their overlap included (tests/concerns/timing/test_timing_redis.py compares).
        members, scores = answer[0::2][:len(answer) // 2], answer[1::2]
        try:
            floats: dict[Any, float] = dict.fromkeys(set(scores), 0.0)
        except TypeError:  # an unhashable score (not from hiredis): one at a time
            return [(bytes(member), float(score)) for member, score in zip(members, scores)]
        for score in floats:
            floats[score] = float(score)
        if set(map(type, members)) == {bytes}:  # hiredis' (bytes() of each would cost more than the zip)
            return list(zip(members, map(floats.__getitem__, scores)))
        return list(zip(map(bytes, members), map(floats.__getitem__, scores)))
    except (TypeError, ValueError):  # not a sorted-set reply: nothing new to read from it
        return []


def _unseen(entries: list[Entry], seen: Container[Entry]) -> list[Entry]:
    if not seen:
        return entries
    if isinstance(seen, Seen):
        return seen.unseen(entries)
    return [entry for entry in entries if entry not in seen]
