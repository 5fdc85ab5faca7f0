"""RQ 3.0's rate limits: the jobs waiting for a slot, as ``rq_jobs{status="rate_limited"}`` of
their queue.

A job enqueued with ``rate_limit=RateLimit(key, concurrency)`` while ``concurrency`` jobs of
that key are queued or running is in no queue and no registry: its hash has status
``rate_limited`` and its id is a member of the zset ``rq:rl:<key>:rate_limited`` (score: when it
began to wait); the keys in use are the set ``rq:rl-keys`` (``rq/rate_limit.py``). One key may
serve jobs of several queues, so each waiting job's queue is its hash's ``origin``:

- round 1: ``SMEMBERS rq:rl-keys``;
- round 2, per key: ``ZCARD`` and the oldest ``SAMPLE_PER_KEY`` members (``ZRANGEBYSCORE``);
- round 3: ``HMGET rq:job:<id> origin status`` per member read, at most ``MAX_JOBS`` a scrape.

A key with more waiting jobs than were read has its count shared among its queues in the
proportions of the jobs read (exact for a key serving one queue, the usual case). Members whose
hash is gone or no longer ``rate_limited`` are stale (RQ drops them when it next promotes) and
not counted. Before RQ 3.0 there is no ``rq:rl-keys``: one SMEMBERS of a missing key a scrape.

RQ 3.0's ``ready_to_enqueue`` (``rq:ready:<queue>``) is not read: the worker that meets a job's
dependencies enqueues it in the same breath, and the registry only keeps jobs whose enqueuer died
in between, until the next maintenance (about every 10 minutes).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads, taken
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import QueueState, Snapshot

SAMPLE_PER_KEY = 1_000
MAX_JOBS = 10_000
FIELDS = (b"origin", b"status")


@dataclass(frozen=True)
class RateLimitOptions:
    wants_queue: Callable[[str], bool]  # a queue known only by its waiting jobs gets a row if wanted


class RateLimits(Concern[RateLimitOptions, "RateLimitReads", Mapping[str, int]]):
    """Result: queue -> its jobs waiting for a rate limit slot, folded into ``rq_jobs``."""

    @classmethod
    def options(cls, settings: Settings) -> RateLimitOptions:
        return taken(RateLimitOptions, settings)

    def __init__(self, options: RateLimitOptions, keys: Keys) -> None:
        self.wants_queue = options.wants_queue
        self.keys = keys

    def reads(self, given: Given) -> RateLimitReads:
        return RateLimitReads(self.keys)

    def fold(self, snapshot: Snapshot, result: Mapping[str, int]) -> Snapshot:
        return fold(snapshot, result, self.wants_queue)

    def families(self, result: Mapping[str, int]) -> Iterator[Metric]:
        return iter(())  # its figures are rq_jobs{status="rate_limited"}: the core families'


class RateLimitReads(Reads[Mapping[str, int]]):
    """One scrape's reads of the rate limits, in rounds 1 to 3."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.limit_keys: list[bytes] = []
        self.sizes: list[int] = []
        self.members: list[list[bytes]] = []
        self.asked: list[tuple[int, bytes]] = []  # (index of the key, job id)
        self.answers: list[list | None] = []

    def first(self, batch: Batch) -> None:
        batch.add(self._take_keys, "SMEMBERS", self.keys.rate_limit_keys)

    def _take_keys(self, reply: list) -> None:
        self.limit_keys = sorted(k for k in reply if isinstance(k, bytes))

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        if not self.limit_keys:
            return
        commands: list[tuple] = []
        for key in self.limit_keys:
            waiting = self.keys.rate_limited(key)
            commands += [("ZCARD", waiting), ("ZRANGEBYSCORE", waiting, "-inf", "+inf", "LIMIT", 0, SAMPLE_PER_KEY)]
        batch.add_group(self._take_sets, commands)

    def _take_sets(self, replies: list) -> None:
        for size, members in zip(replies[::2], replies[1::2]):
            self.sizes.append(size if isinstance(size, int) else 0)
            self.members.append([m for m in members if isinstance(m, bytes)] if isinstance(members, list) else [])

    def third(self, batch: Batch) -> None:
        self.asked = [(i, m) for i, members in enumerate(self.members) for m in members][:MAX_JOBS]
        if self.asked:
            job = self.keys.kind("job")
            batch.add_group(self._take_hashes, [("HMGET", job + m, *FIELDS) for _, m in self.asked])

    def _take_hashes(self, replies: list) -> None:
        self.answers = replies

    def result(self, given: Given) -> Mapping[str, int]:
        """Queue -> its jobs waiting for a rate limit slot."""
        read: list[Counter] = [Counter() for _ in self.sizes]
        asked = [0] * len(self.sizes)
        for (i, _), answer in zip(self.asked, self.answers):
            asked[i] += 1
            if isinstance(answer, list) and len(answer) == 2 and answer[1] == b"rate_limited" and answer[0]:
                read[i][parse.text(answer[0])] += 1
        counts: Counter = Counter()
        for size, origins, n in zip(self.sizes, read, asked):
            counts.update(share(size, origins, n))
        return dict(counts)


def share(size: int, origins: Counter, read: int) -> dict[str, int]:
    """A key's ``size`` waiting members, of which ``read`` were read and ``origins`` counted per
    queue (the rest stale): each queue's part, in whole jobs (largest remainders)."""
    if read == 0 or not origins:
        return {}
    if size <= read:
        return dict(origins)
    exact = {q: n * size / read for q, n in origins.items()}
    parts = {q: int(v) for q, v in exact.items()}
    total = round(sum(exact.values()))
    for q in sorted(exact, key=lambda q: exact[q] - parts[q], reverse=True)[:max(0, total - sum(parts.values()))]:
        parts[q] += 1
    return parts


def fold(snapshot: Snapshot, counts: Mapping[str, int],
         wants_queue: Callable[[str], bool] = lambda name: True) -> Snapshot:
    """The snapshot with each queue's rate-limited jobs. Enqueueing adds the queue to ``rq:queues``
    first; a queue whose waiting jobs outlive that entry (``Queue.delete`` removes it) still gets
    a row of its own."""
    if not counts:
        return snapshot
    left = dict(counts)
    queues = [q._replace(rate_limited=left.pop(q.name)) if q.name in left else q for q in snapshot.queues]
    queues += [QueueState(name, rate_limited=n) for name, n in sorted(left.items()) if wants_queue(name)]
    return dataclasses.replace(snapshot, queues=tuple(queues))
