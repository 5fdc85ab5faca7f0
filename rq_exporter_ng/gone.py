"""Queues that went: the per-queue series a concern keeps for the life of the process (job timing's
counters and histograms, exception classes) are dropped once their queue has had no key in Redis
(it is not among the queues read) for ``--gone-queue-seconds``; 0 keeps them for ever.

A dropped series that comes back (the queue is used again) restarts from 0: to ``rate()`` and
``increase()`` that is a counter reset, as after a restart of the exporter.
"""

from __future__ import annotations

from collections.abc import Iterable


class GoneQueues:
    """When each queue was last read; which of the queues a concern keeps have been gone too long."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.last_seen: dict[str, float] = {}

    def expired(self, present: Iterable[str], kept: Iterable[str], now: float) -> list[str]:
        """The queues of ``kept`` not in ``present`` (the queues read this scrape) for ``seconds``
        or more, forgotten here too. A queue first met absent counts from ``now``."""
        if not self.seconds:
            return []
        last_seen = self.last_seen
        here = set(present)
        for queue in here:
            last_seen[queue] = now
        gone = []
        for queue in set(kept) - here:
            if now - last_seen.setdefault(queue, now) >= self.seconds:
                gone.append(queue)
        for queue in gone:
            del last_seen[queue]
        for queue in [q for q in last_seen if q not in here and now - last_seen[q] >= self.seconds]:
            del last_seen[queue]  # gone, and nothing kept of it: nothing to remember
        return sorted(gone)
