"""The Redis side of job timing: its reads ride in the reader's rounds 2 and 3.

Round 2, per queue and registry, one group: a ZRANGEBYSCORE per known TTL window, the probe
above the longest TTL (in that window's read once the registry is settled, else on its own), a
ZCOUNT of the entries kept forever (unless the probe's read counts them) and, for a few
registries in turn, a sweep chunk. Round 3: one HMGET per new entry (within the per-scrape
caps). Only read commands. Nothing here changes the tracker: ``Timing.apply`` does, once the
whole read has succeeded, so a scrape that fails half way leaves every cursor where it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial

from rq_exporter.batch import Batch
from rq_exporter.reader import Keys
from rq_exporter.timing import PROBE_CHUNK, SWEEP_CHUNK, Candidate, Entry, RegistryRead, Scan, Timing

# Scores of entries kept forever: result_ttl=-1 is stored as +inf, failure_ttl=-1 as -1.
FOREVER = {"finished": ("+inf", "+inf"), "failed": ("-1", "-1")}


def commands(read: RegistryRead, key: bytes) -> list[tuple]:
    """The reads of one registry, in the order ``take`` expects their replies."""
    out: list[tuple] = [("ZRANGEBYSCORE", key, lo, hi, "WITHSCORES") for _, lo, hi in read.windows]
    if read.probe_in_window is not None:
        _, lo, _ = read.windows[-1]
        out[-1] = ("ZRANGEBYSCORE", key, lo, read.probe_in_window, "WITHSCORES")
    else:
        out.append(("ZRANGEBYSCORE", key, f"({read.probe_above}", "(inf", "WITHSCORES", "LIMIT", 0, PROBE_CHUNK))
    if read.sweep is not None:
        start, skip = read.sweep
        out.append(("ZRANGEBYSCORE", key, repr(start), "(inf", "WITHSCORES", "LIMIT", skip, SWEEP_CHUNK))
    if read.probe_in_window != "+inf":
        out.append(("ZCOUNT", key, *FOREVER[read.status]))
    return out


def take(read: RegistryRead, replies: list) -> None:
    """Fills ``read`` from the replies to ``commands(read, ...)`` (None: an error reply)."""
    replies = iter(replies)
    found: dict[int, list[Entry]] = {}
    for t, _, _ in read.windows[:-1]:
        if entries := _entries(next(replies)):
            found[t] = entries
    if read.windows:
        reply = next(replies)
        top_ttl, _, top = read.windows[-1]
        entries = _entries(reply)
        if read.probe_in_window is not None and reply is not None:
            # Sorted by score: the window's own entries, then the probe's, then the kept-forever.
            cut = next((i for i, (_, score) in enumerate(entries) if score > top), len(entries))
            finite = [entry for entry in entries[cut:] if entry[1] != math.inf]
            read.probe_entries, read.probe_found = finite[:PROBE_CHUNK], bool(finite)
            if read.probe_in_window == "+inf":
                read.forever = len(entries) - cut - len(finite)
            entries = entries[:cut]
        if entries:
            found[top_ttl] = entries
    if found:
        read.window_entries = found
    if read.probe_in_window is None:
        reply = next(replies)
        if reply is not None:
            read.probe_entries = _entries(reply)
            read.probe_found = bool(read.probe_entries)
    if read.sweep is not None:
        read.sweep_entries = _entries(next(replies))
    if read.probe_in_window != "+inf":
        read.forever = _int(next(replies))


def _entries(reply: list | None) -> list[Entry]:
    """A WITHSCORES reply -> [(member, score)]: RESP2 sends it flat, RESP3 as pairs."""
    if not reply:
        return []
    try:
        if isinstance(reply[0], list | tuple):
            return [(bytes(member), float(score)) for member, score in reply]
        return [(bytes(reply[i]), float(reply[i + 1])) for i in range(0, len(reply) - 1, 2)]
    except (TypeError, ValueError):  # not a sorted-set reply: nothing new to read from it
        return []


def _int(reply: object) -> int | None:
    return reply if isinstance(reply, int) else None


class TimingScan:
    """One scrape's timing reads; hand it to ``read_snapshot(extra=...)``, then ``finish()``."""

    def __init__(self, timing: Timing, keys: Keys) -> None:
        self.timing = timing
        self.keys = keys
        self.scan: Scan | None = None
        self._candidates: list[Candidate] = []

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        # Quiet: these keys are the reader's too, and it reports their errors.
        batch.add_groups(self._groups(queues, now), quiet=True)

    def _groups(self, queues: list[tuple[bytes, str]], now: float) -> Iterator[tuple]:
        # Planned only as the batch is sent, while Redis works on the reads before these.
        self.scan = self.timing.plan(queues, now)
        prefixes = {status: self.keys.of(status, b"") for status in FOREVER}
        for read in self.scan.reads:
            yield partial(take, read), commands(read, prefixes[read.status] + read.raw)

    def third(self, batch: Batch) -> None:
        if self.scan is None:
            return
        self._candidates = self.timing.select(self.scan)
        if self._candidates:
            fields = self.timing.fields
            batch.add_group(self._take_hashes, [("HMGET", self.keys.job(c.member), *fields)
                                                for c in self._candidates], quiet=True)

    def _take_hashes(self, replies: list) -> None:
        fields = self.timing.fields
        for candidate, reply in zip(self._candidates, replies):
            candidate.fields = dict(zip(fields, reply)) if reply is not None else {}

    def finish(self) -> list:
        """After a successful read: move the cursors, count and time. Returns the problems."""
        if self.scan is None:
            return []
        return self.timing.apply(self.scan)
