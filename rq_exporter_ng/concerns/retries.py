"""Retried attempts per queue: ``rq_job_retries_total{queue}``, from what the exporter reads anyway.

What a retried attempt leaves in Redis (RQ's code, 1.7, 1.10, 1.16, 2.12 and 3.0):

- a job enqueued with ``retry=Retry(max=N)`` (RQ >= 1.5) that raises with retries left: the
  worker's ``handle_job_failure`` decrements the job hash's ``retries_left`` (N is stored nowhere)
  and re-enqueues it, or schedules it (``rq:scheduled:<queue>``) with an interval. No failed
  registry entry, no results stream entry; the one durable trace is the worker hash's
  ``failed_job_count``, incremented in the same pipeline, as for every failed attempt;
- a job that *returns* ``Retry`` (RQ 2.x, 3.x): ``handle_job_retry`` writes a RETRIED result and
  ``number_of_retries`` + 1, and increments ``failed_job_count`` too; past its max it fails for
  good (``failed_job_count`` + 1 and a failed registry entry), like a raised exception;
- a final failure (and a stopped job) adds one to ``failed_job_count`` and one failed registry
  entry, which job timing counts (``rq_jobs_failed_total``).

So, per scrape and queue q: F = the increases of ``failed_job_count`` of the live workers that
listen to q alone; D = q's jobs that job timing found failed this scrape; F - D attempts were
retried. No read of its own: the worker hashes are the reader's, the failed jobs job timing's.

Exact for queues whose workers listen to them alone and live across scrapes; otherwise a lower
bound: a worker of several queues cannot be attributed (RQ keeps no trace of which queue a failed
attempt was on), a worker's increase after the last scrape before it exits is lost, and RQ's
maintenance moves abandoned jobs to failed (or retries them) without any worker's count. A worker
run with ``--disable-default-exception-handler`` leaves its final failures out of the failed
registry: each counts as a retry. RQ before 1.5 has no retries: nothing is counted there.

Per-scrape arithmetic, pure (``attempt_increases``, ``RetryCounts.record``):

- the first scrape of the process is a baseline; a worker first seen later was born since the
  previous scrape and counts from 0; a worker whose counters went down restarted under the same
  name: a new one, counted from 0 (a worker hash carries no birth the snapshot keeps);
- RQ writes the worker's count and the failed registry entry in one MULTI, but the scrape reads
  the worker hashes before the registries (and RQ 1.16 / 2.x execute the failed registry's part
  first): a final failure can show up in D one scrape before its F. So a queue's shortfall
  (D > F) is carried to the next scrape, once, instead of being lost and counting that failure
  as a retry then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from prometheus_client.core import Metric

from rq_exporter_ng.concern import Concern, Given, Reads, taken
from rq_exporter_ng.concerns.failed_queue import FailedQueue
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.concerns.timing.records import Outcome
from rq_exporter_ng.families.table import Row, table
from rq_exporter_ng.gone import GoneQueues
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import WorkerState

NAME = "rq_job_retries_total"


class Seen(NamedTuple):
    """A worker's counters as last read (None: unreadable)."""

    failed: int | None
    successful: int | None
    working: float | None


def _restarted(before: Seen, now: Seen) -> bool:
    """A counter went down: the name belongs to a new worker (RQ's counters only grow)."""
    return any(b is not None and n is not None and n < b for b, n in zip(before, now))


def attempt_increases(known: Mapping[str, Seen] | None, workers: Iterable[WorkerState],
                      ) -> tuple[dict[str, Seen], Counter[str]]:
    """(what to remember of each worker, failed attempts per queue since the previous scrape).

    ``known``: the previous scrape's memory; None on the first scrape (a baseline, nothing counted).
    Only workers of one queue count; one whose failed count cannot be read keeps its memory."""
    memory: dict[str, Seen] = {}
    increases: Counter[str] = Counter()
    for w in workers:
        now = Seen(w.failed_jobs, w.successful_jobs, w.working_seconds)
        before = None if known is None else known.get(w.name)
        if now.failed is None:
            memory[w.name] = before if before is not None else now
            continue
        memory[w.name] = now
        if known is None or len(w.queues) != 1 or not has_retry(w.rq_version):
            continue
        if before is None or before.failed is None:
            # Born since the previous scrape, or unreadable then (its history unknown: a baseline).
            grown = now.failed if before is None else 0
        elif _restarted(before, now):
            grown = now.failed
        else:
            grown = now.failed - before.failed
        if grown:
            increases[w.queues[0]] += grown
    return memory, increases


def has_retry(version: str | None) -> bool:
    """Whether a worker of this RQ version can retry: Retry came with RQ 1.5. Before it, every
    failed attempt is final, and RQ 0.x increments the worker's count before the job reaches its
    failed queue, so a scrape in between would take that failure for a retry.

    No version (None): RQ < 1.2, which wrote none; from 1.2 on, ``register_birth`` writes it with
    the birth every live worker has. A version that is not a number (a fork's): it can."""
    if not version:
        return False
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (1, 5)


def final_failures(outcome: Outcome) -> Counter[str]:
    """Per queue, the jobs job timing found failed this scrape (kept forever ones included)."""
    assert outcome.failed is not None  # (set by Outcome)
    found = Counter(job[0] for job in outcome.failed)  # queue (records.Ended)
    for queue, status, grown in outcome.kept_forever:
        if status == "failed":
            found[queue] += grown
    return found


class RetryCounts:
    """Retried attempts per queue since the exporter started, and each queue's shortfall carried."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.shortfall: dict[str, int] = {}
        # Every queue read since the exporter started, until gone: its series stays (at 0) as
        # job timing's counters do, and goes with them.
        self.queues: set[str] = set()

    def record(self, attempts: Mapping[str, int], failures: Mapping[str, int]) -> None:
        """One scrape: per queue, failed attempts less final failures (less the last scrape's
        shortfall); a shortfall is kept for the next scrape only."""
        shortfall: dict[str, int] = {}
        for queue in {*attempts, *failures, *self.shortfall}:
            net = attempts.get(queue, 0) - failures.get(queue, 0)
            if net < 0:
                shortfall[queue] = -net
            elif net > self.shortfall.get(queue, 0):
                self.counts[queue] += net - self.shortfall.get(queue, 0)
        self.shortfall = shortfall

    def forget(self, queue: str) -> None:
        self.counts.pop(queue, None)
        self.shortfall.pop(queue, None)
        self.queues.discard(queue)

    def rows(self) -> list[Row]:
        """Every queue read or counted, 0 where nothing was."""
        return [((name,), self.counts[name]) for name in sorted({*self.queues, *self.counts})]


@dataclass(frozen=True)
class RetriesOptions:
    gone_queue_seconds: int


@dataclass(frozen=True)
class RetryTotals:
    rows: Sequence[Row]


class Retries(Concern[RetriesOptions, "RetriesReads", RetryTotals]):
    """On with job timing, whose failed jobs it takes; RQ 0.x's failed queue says there are no retries."""

    needs = (FailedQueue, JobTiming)

    @classmethod
    def options(cls, settings: Settings) -> RetriesOptions:
        return taken(RetriesOptions, settings)

    def __init__(self, options: RetriesOptions, keys: Keys) -> None:
        self.workers: dict[str, Seen] | None = None  # None until the first successful read
        self.counts = RetryCounts()
        self.gone = GoneQueues(options.gone_queue_seconds)

    def reads(self, given: Given) -> RetriesReads:
        return RetriesReads(self)

    def unread(self) -> RetryTotals:
        return RetryTotals(self.counts.rows())

    def families(self, result: RetryTotals) -> Iterator[Metric]:
        return families(result)


class RetriesReads(Reads[RetryTotals]):
    """Nothing to read: the worker hashes are in the snapshot, the failed jobs in job timing's result."""

    def __init__(self, concern: Retries) -> None:
        self.concern = concern

    def result(self, given: Given) -> RetryTotals:
        concern, snapshot = self.concern, given.snapshot
        first = concern.workers is None
        concern.workers, attempts = attempt_increases(concern.workers, snapshot.workers)
        present = {q.name for q in snapshot.queues}
        old = given.result(FailedQueue)
        if not first and not (old is not None and old.legacy):  # RQ 0.x: no Retry, nothing to count
            failures = final_failures(given.result(JobTiming).outcome)
            concern.counts.record({q: n for q, n in attempts.items() if q in present}, failures)
        concern.counts.queues.update(present)
        for queue in concern.gone.expired(present, concern.counts.queues | set(concern.counts.counts), snapshot.time):
            concern.counts.forget(queue)
        return RetryTotals(concern.counts.rows())


def families(totals: RetryTotals) -> Iterator[Metric]:
    yield table(NAME, list(totals.rows))
