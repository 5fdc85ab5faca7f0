"""The Redis side of job timing: its reads ride in the reader's rounds 2 and 3.

Round 2, per queue and registry: one ZRANGEBYSCORE per known TTL window, a probe above the
longest TTL, a ZCOUNT of the entries kept forever and, for a few registries in turn, a sweep
chunk. Round 3: one HMGET per new entry (within the per-scrape caps). Only read commands.
Nothing here changes the tracker: ``Timing.apply`` does, once the whole read has succeeded,
so a scrape that fails half way leaves every cursor where it was.
"""

from __future__ import annotations

from rq_exporter.batch import Batch
from rq_exporter.reader import Keys
from rq_exporter.timing import PROBE_CHUNK, SWEEP_CHUNK, Entry, Scan, Timing

# Scores of entries kept forever: result_ttl=-1 is stored as +inf, failure_ttl=-1 as -1.
FOREVER = {"finished": ("+inf", "+inf"), "failed": ("-1", "-1")}


def _entries(reply: list) -> list[Entry]:
    """A WITHSCORES reply -> [(member, score)]: RESP2 sends it flat, RESP3 as pairs."""
    try:
        if reply and isinstance(reply[0], list | tuple):
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

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        self.scan = scan = self.timing.plan(queues, now)
        for read in scan.reads:
            key = self.keys.of(read.status, read.raw)
            for t, lo, hi in read.windows:
                batch.add(lambda reply, read=read, t=t: read.window_entries.__setitem__(t, _entries(reply)),
                          "ZRANGEBYSCORE", key, lo, hi, "WITHSCORES")
            if read.probe_above is not None:
                batch.add(lambda reply, read=read: setattr(read, "probe_entries", _entries(reply)),
                          "ZRANGEBYSCORE", key, f"({read.probe_above}", "(inf", "WITHSCORES", "LIMIT", 0, PROBE_CHUNK)
            if read.sweep is not None:
                start, skip = read.sweep
                batch.add(lambda reply, read=read: setattr(read, "sweep_entries", _entries(reply)),
                          "ZRANGEBYSCORE", key, repr(start), "(inf", "WITHSCORES", "LIMIT", skip, SWEEP_CHUNK)
            lo, hi = FOREVER[read.status]
            batch.add(lambda reply, read=read: setattr(read, "forever", _int(reply)), "ZCOUNT", key, lo, hi)

    def third(self, batch: Batch) -> None:
        if self.scan is None:
            return
        for candidate in self.timing.select(self.scan):
            batch.add(lambda reply, c=candidate: setattr(c, "fields", dict(zip(self.timing.fields, reply))),
                      "HMGET", self.keys.job(candidate.member), *self.timing.fields)

    def finish(self) -> list:
        """After a successful read: move the cursors, count and time. Returns the problems."""
        if self.scan is None:
            return []
        return self.timing.apply(self.scan)
