"""RQ 0.x's failed queue: failed jobs counted where they came from, never as a queue of their own.

Before RQ 1.0 a failed job is RPUSHed onto the list ``rq:queue:failed``, a member of
``rq:queues`` like any queue; the job hash keeps ``origin`` (its queue) and gets status
``failed``. Read as a queue, that list would page as ``RQQueueWithoutWorkers{queue="failed"}``
with an age that grows forever, while the failures of the real queues stay at 0. Here it
becomes ``rq_jobs{queue=<origin>, status="failed"}``, and its new jobs feed job timing's
``rq_jobs_failed_total`` and failure histograms like entries of a failed registry.

A queue named ``failed`` is taken for RQ 0.x's failed queue once the jobs read from it have
status ``failed`` (a queue of that name in RQ >= 1.0 holds queued jobs).

The list only grows at its tail except when jobs are requeued or deleted, so each scrape reads
what was appended since the last one (round 2: LLEN, LINDEX of the last job known, LRANGE of
the new ones; round 3: one HMGET per new job, at most ``MAX_NEW`` a scrape) and keeps each job's
origin. When the job it knew last is no longer where it was (a requeue or delete), it reads the
whole list again (round 3) and the origins of the jobs it does not know over the next scrapes.
Memory: each job of the list, its id and queue (~150 bytes).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads, taken
from rq_exporter_ng.concerns.timing.records import Ended
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem, QueueState, Snapshot

NAME = "failed"
MAX_NEW = 10_000  # job hashes read per scrape
FIELDS = (*JOB_FIELDS, b"origin", b"status")


@dataclass
class FailedQueueTrack:
    """Kept across scrapes: the list as last read, and what is known of its jobs."""

    ids: list[bytes] = field(default_factory=list)
    origins: dict[bytes, str] = field(default_factory=dict)  # job id -> its queue
    fresh: set[bytes] = field(default_factory=set)  # appended since the first scrape, not read yet
    legacy: bool | None = None  # None: no job read yet to tell
    started: bool = False  # the first scrape's jobs are history: not counted as new failures


@dataclass(frozen=True)
class FailedQueueResult:
    """One scrape's reading: the per-queue counts, and the jobs that failed since the last scrape."""

    legacy: bool
    counts: dict[str, int]
    ended: tuple[Ended, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class FailedQueueOptions:
    wants_queue: Callable[[str], bool]  # an origin not in rq:queues gets a row if wanted


class FailedQueue(Concern[FailedQueueOptions, "FailedQueueReads", "FailedQueueResult | None"]):
    """Result: None when there is no failed list. Job timing takes it (and its reads) as an input."""

    @classmethod
    def options(cls, settings: Settings) -> FailedQueueOptions:
        return taken(FailedQueueOptions, settings)

    def __init__(self, options: FailedQueueOptions, keys: Keys) -> None:
        self.wants_queue = options.wants_queue
        self.keys = keys
        self.track = FailedQueueTrack()

    def reads(self, given: Given) -> FailedQueueReads:
        return FailedQueueReads(self)

    def fold(self, snapshot: Snapshot, result: FailedQueueResult | None) -> Snapshot:
        return fold(snapshot, result, self.wants_queue)

    def problems(self, result: FailedQueueResult | None) -> tuple[Problem, ...]:
        return ()  # fold puts them into the snapshot's

    def families(self, result: FailedQueueResult | None) -> Iterator[Metric]:
        return iter(())  # its figures are rq_jobs{status="failed"} and job timing's: not its own


class FailedQueueReads(Reads["FailedQueueResult | None"]):
    """One scrape's reads of the failed list, in rounds 2 and 3."""

    def __init__(self, concern: FailedQueue) -> None:
        self.track = track = concern.track
        self.key = concern.keys.of("queue", NAME.encode())
        self.job = concern.keys.kind("job")
        # Known from earlier scrapes, before this read: the list is RQ 0.x's failed queue and no
        # queue (job timing leaves its registries out).
        self.not_queues: tuple[str, ...] = (NAME,) if track.legacy else ()
        self.present = False
        self.length: int | None = None
        self.last: bytes | None = None
        self.tail: list[bytes] = []
        self.whole: list[bytes] | None = None  # the list read again, after a change in the known part
        self.asked: list[bytes] = []
        self.answers: list[list | None] = []

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        # Read whatever the queue filters say: its jobs belong to the other queues. 3 commands on a
        # missing key when there is no such list; none once its jobs showed it is an ordinary queue.
        if self.track.legacy is False:
            return
        self.present = True
        known = len(self.track.ids)
        reads: list[tuple] = [("LLEN", self.key), ("LINDEX", self.key, known - 1 if known else 0),
                              ("LRANGE", self.key, known, known + MAX_NEW - 1)]
        batch.add_group(self._take_list, reads, quiet=True)  # the reader reports this key's errors

    def _take_list(self, replies: list) -> None:
        length, last, tail = replies
        self.length = length if isinstance(length, int) else None
        self.last = last if isinstance(last, bytes) else None
        self.tail = [i for i in tail if isinstance(i, bytes)] if isinstance(tail, list) else []

    def third(self, batch: Batch) -> None:
        if not self.present or self.length is None:
            return
        track = self.track
        if track.ids and (self.last != track.ids[-1] or self.length < len(track.ids)):
            batch.add(self._take_whole, "LRANGE", self.key, 0, -1)
            return
        unknown = [i for i in self.tail if i not in track.origins]
        pending = [i for i in track.ids if i not in track.origins] if len(track.origins) < len(track.ids) else []
        self.asked = (pending + unknown)[:MAX_NEW]
        if self.asked:
            batch.add_group(self._take_hashes, [("HMGET", self.job + i, *FIELDS) for i in self.asked], quiet=True)

    def _take_whole(self, reply: list) -> None:
        self.whole = [i for i in reply if isinstance(i, bytes)]

    def _take_hashes(self, replies: list) -> None:
        self.answers = replies

    def result(self, given: Given) -> FailedQueueResult | None:
        """None when there is no failed list."""
        if not self.present or self.length is None:
            return None
        track = self.track
        known = set(track.ids)
        appended = [i for i in (self.whole if self.whole is not None else self.tail) if i not in known]
        if self.whole is not None:
            track.ids = self.whole
            track.origins = {i: track.origins[i] for i in self.whole if i in track.origins}
            track.fresh &= set(self.whole)
        else:
            track.ids = track.ids + self.tail
        if track.started:
            track.fresh.update(appended)
        ended: list[Ended] = []
        problems: list[Problem] = []
        for job_id, answer in zip(self.asked, self.answers):
            origin, status, times = _job(answer)
            if origin is None:
                problems.append(Problem("missing_job", parse.text(self.job + job_id), "job in the failed queue without "
                                        "an origin"))
                origin = "unknown"
            if track.legacy is None and status is not None:
                track.legacy = status == "failed"
            track.origins[job_id] = origin
            if job_id in track.fresh:
                track.fresh.discard(job_id)
                if times is not None:
                    ended.append(_ended(origin, job_id, times, problems, self.job))
        track.started = True
        counts = Counter(track.origins[i] for i in track.ids if i in track.origins)
        return FailedQueueResult(bool(track.legacy), dict(counts), tuple(ended), tuple(problems))


def _job(answer: list | None) -> tuple[str | None, str | None, Sequence[bytes | None] | None]:
    if not answer or all(v is None for v in answer):
        return None, None, None
    origin, status = answer[-2], answer[-1]
    return (parse.text(origin) if origin else None, parse.text(status) if status else None, answer[:len(JOB_FIELDS)])


def _ended(origin: str, job_id: bytes, times: Sequence[bytes | None], problems: list[Problem], job: bytes) -> Ended:
    try:
        when = parse.timestamp(times[0])
    except ValueError as error:
        problems.append(Problem("bad_timestamp", parse.text(job + job_id), str(error)[:200]))
        when = None
    return Ended(origin, "failed", job_id, when, times if when is not None else None)


def fold(snapshot: Snapshot, result: FailedQueueResult | None,
         wants_queue: Callable[[str], bool] = lambda name: True) -> Snapshot:
    """The snapshot with RQ 0.x's failed queue read as what it is: its jobs added to their origins'
    failed count, and no queue named ``failed``. Unchanged when the list is not RQ 0.x's."""
    if result is None or not result.legacy:
        return snapshot
    counts = dict(result.counts)
    queues = []
    for q in snapshot.queues:
        if q.name == NAME:
            continue
        extra = counts.pop(q.name, 0)
        queues.append(q._replace(failed=q.failed + extra) if extra else q)
    # Origins that are not (or no longer) in rq:queues still get their failed jobs counted.
    queues += [QueueState(name, failed=n) for name, n in sorted(counts.items()) if wants_queue(name)]
    return dataclasses.replace(snapshot, queues=tuple(queues), problems=snapshot.problems + result.problems,
                               worker_only_queues=tuple(n for n in snapshot.worker_only_queues if n != NAME))
