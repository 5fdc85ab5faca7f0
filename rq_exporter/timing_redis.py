"""Job timing's Redis side: a registry's plan into read commands, their replies into the
tracker's input (timing.py sends them in the reader's rounds 2 and 3).

Round 2, per queue and registry, one group: a ZRANGEBYSCORE per known TTL window, the probe
above the longest TTL (in that window's read once the registry is settled, else on its own), for
the finished registry a ZCOUNT of the jobs kept forever (unless the probe's read counts them),
and, for a few registries in turn, a sweep chunk. The failed jobs kept forever are the reader's
count (``QueueState.failed_forever``). With RQ's default TTLs an idle queue costs 2 commands.
Round 3: one HMGET per new entry (within the per-scrape caps). Only read commands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rq_exporter.timing_tracker import PROBE_CHUNK, SWEEP_CHUNK, Entry, Probe, RegistryPlan, RegistryReply

# Finished jobs kept forever (result_ttl=-1) have the score +inf. Failed ones (failure_ttl=-1, score
# -1) are counted by the reader, which reads the failed registry's negative scores apart anyway.
FOREVER = ("+inf", "+inf")
# Where the longest window's read ends, by probe mode (Probe.ALONE: at the window's top).
_WINDOW_TOP = {Probe.IN_WINDOW: "(inf", Probe.IN_WINDOW_WITH_FOREVER: "+inf"}
_NOTHING_NEW = RegistryReply({}, (), False, (), 0)  # nothing in the window, above it, or kept forever
_NOTHING_NEW_UNCOUNTED = RegistryReply({}, (), False, (), None)  # likewise, the kept-forever not read here


def commands(rp: RegistryPlan, key: bytes) -> list[tuple]:
    """The reads of one registry, in the order ``reply`` expects their answers."""
    if len(rp.windows) == 1 and rp.sweep is None and rp.probe is not Probe.ALONE and not _counts_forever(rp):
        # Most registries on most scrapes: one read, the window and the probe above it.
        return [("ZRANGEBYSCORE", key, rp.windows[0].low, _WINDOW_TOP[rp.probe], "WITHSCORES")]
    out: list[tuple] = [("ZRANGEBYSCORE", key, w.low, w.high, "WITHSCORES") for w in rp.windows]
    if rp.probe is Probe.ALONE:
        out.append(("ZRANGEBYSCORE", key, f"({rp.probe_above}", "(inf", "WITHSCORES", "LIMIT", 0, PROBE_CHUNK))
    else:
        out[-1] = ("ZRANGEBYSCORE", key, rp.windows[-1].low, _WINDOW_TOP[rp.probe], "WITHSCORES")
    if rp.sweep is not None:
        start, skip = rp.sweep
        out.append(("ZRANGEBYSCORE", key, repr(start), "(inf", "WITHSCORES", "LIMIT", skip, SWEEP_CHUNK))
    if _counts_forever(rp):
        out.append(("ZCOUNT", key, *FOREVER))
    return out


def _counts_forever(rp: RegistryPlan) -> bool:
    return rp.status == "finished" and rp.probe is not Probe.IN_WINDOW_WITH_FOREVER


def reply(rp: RegistryPlan, replies: list) -> RegistryReply:
    """The answers to ``commands(rp, ...)`` (None where Redis answered an error) as a result."""
    return idle_reply(rp, replies) or full_reply(rp, replies)


def idle_reply(rp: RegistryPlan, replies: list) -> RegistryReply | None:
    """What ``full_reply`` makes of a settled registry with nothing new, the answer of most
    registries on most scrapes, without walking its answers; None for any other.
    tests/test_timing_redis.py checks both agree."""
    if rp.sweep is not None or len(rp.windows) != 1 or replies[0] != []:
        return None
    if rp.probe is Probe.IN_WINDOW_WITH_FOREVER:
        return _NOTHING_NEW
    if rp.probe is Probe.IN_WINDOW:
        if rp.status == "failed":
            return _NOTHING_NEW_UNCOUNTED
        if type(replies[1]) is int:
            return RegistryReply({}, (), False, (), replies[1])
    return None


def full_reply(rp: RegistryPlan, replies: list) -> RegistryReply:
    answers = iter(replies)
    found: dict[int, list[Entry]] = {}
    for w in rp.windows[:-1]:
        if entries := _entries(next(answers)):
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
            cut = next((i for i, (_, score) in enumerate(entries) if score > top), len(entries))
            finite = [entry for entry in entries[cut:] if entry[1] != math.inf]
            probe, probe_found = finite[:PROBE_CHUNK], bool(finite)
            if rp.probe is Probe.IN_WINDOW_WITH_FOREVER:
                forever = len(entries) - cut - len(finite)
            entries = entries[:cut]
        if entries:
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
        return [(bytes(answer[i]), float(answer[i + 1])) for i in range(0, len(answer) - 1, 2)]
    except (TypeError, ValueError):  # not a sorted-set reply: nothing new to read from it
        return []
