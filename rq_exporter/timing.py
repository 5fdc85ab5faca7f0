"""Job timing: how long jobs ran and waited, and how many finished and failed, exactly once each.

A concern (concern.py) in four modules:

- timing.py, this one: the concern, its reads (the tracker's plan in the reader's rounds 2 and
  3) and its result;
- timing_tracker.py: which finished and failed registry entries are new since the last scrape
  (score windows per TTL, TTL learning, the probe and the sweep), deciding per entry with the
  rules of timing_rules.py;
- timing_redis.py: the tracker's plan as read commands, and their replies as the tracker's input;
- timing_histograms.py: the jobs found ended as counters and histograms (with the func label).

Exception classes (exceptions.py) are a concern of their own that takes this one's result.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import Metric

from rq_exporter.batch import Batch
from rq_exporter.concern import Concern, Given, Reads, taken
from rq_exporter.failed_queue import NAME as FAILED_QUEUE
from rq_exporter.failed_queue import FailedQueue
from rq_exporter.keys import Keys
from rq_exporter.settings import Settings
from rq_exporter.snapshot import Problem
from rq_exporter.timing_histograms import JobTimes, JobTotals, families
from rq_exporter.timing_redis import commands, reply
from rq_exporter.timing_rules import JOB_FIELDS
from rq_exporter.timing_tracker import Outcome, Plan, RegistryPlan, RegistryReply, Selection, Tracker

# Read with the hashes of failed jobs, for exception classes (exceptions.py): one HMGET, not two.
EXC_INFO = b"exc_info"
_NOTHING_ENDED = Outcome((), (), ())


@dataclass(frozen=True)
class TimingOptions:
    timing_buckets: tuple[float, ...]
    timing_max_jobs_per_scrape: int
    timing_discovery_per_scrape: int
    timing_clock_slack: int
    timing_ttls: tuple[int, ...]
    timing_func_label: bool
    timing_func_limit: int


@dataclass(frozen=True)
class TimingResult:
    outcome: Outcome  # the jobs the tracker found ended this scrape
    # (queue, job id) -> the stored exc_info of each failed job read in a TTL window this scrape
    exc_info: Mapping[tuple[str, bytes], bytes | None]
    totals: JobTotals
    problems: tuple[Problem, ...]


class JobTiming(Concern[TimingOptions, "TimingReads", TimingResult]):
    """Kept for the life of the process (per /probe target): the tracker's cursors, the counters
    and histograms. Takes RQ 0.x's failed queue: no queue of its own, and its new jobs count."""

    needs = (FailedQueue,)

    @classmethod
    def options(cls, settings: Settings) -> TimingOptions | None:
        return taken(TimingOptions, settings) if settings.job_timing else None

    def __init__(self, options: TimingOptions, keys: Keys) -> None:
        self.keys = keys
        self.tracker = Tracker(options, keys)
        self.times = JobTimes(options, keys)
        # ``data`` holds the call's arguments too: read it only when the func label needs it.
        self.fields = JOB_FIELDS if options.timing_func_label else JOB_FIELDS[:-1]

    def reads(self, given: Given) -> TimingReads:
        return TimingReads(self, skip=given.reads(FailedQueue).not_queues)

    def unread(self) -> TimingResult:
        # Counters keep their values while Redis is down: they are the exporter's own state.
        return TimingResult(_NOTHING_ENDED, {}, self.times.totals(self.tracker.queues), ())

    def forget(self, queue: str) -> None:
        """``queue`` turned out not to be a queue: no counters for it, no reads of its registries."""
        self.tracker.queues.pop(queue, None)
        self.times.forget(queue)

    def families(self, result: TimingResult) -> Iterator[Metric]:
        return families(result.totals)


class TimingReads(Reads[TimingResult]):
    """One scrape's reads of the finished and failed registries (round 2) and of the new jobs'
    hashes (round 3). Nothing here changes the tracker before ``result``: a scrape that fails
    half way leaves every cursor where it was."""

    def __init__(self, timing: JobTiming, skip: Container[str]) -> None:
        self.timing = timing
        self.skip = skip  # queues that are not queues
        self.plan: Plan | None = None
        self.replies: list[RegistryReply | None] = []
        self.selection: Selection | None = None
        self.hashes: list[list[bytes | None] | None] = []  # HMGET answers, in JOB_FIELDS order
        self.exc_info: list[bytes | None] = []  # per read hash of a failed job, else None

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        # Quiet: these keys are the reader's too, and it reports their errors.
        batch.add_groups(self._groups(queues, now), quiet=True)

    def _groups(self, queues: list[tuple[bytes, str]], now: float) -> Iterator[tuple]:
        # Planned only as the batch is sent, while Redis works on the reads before these.
        self.plan = plan = self.timing.tracker.plan([q for q in queues if q[1] not in self.skip], now)
        self.replies = [None] * len(plan.registries)
        prefixes = self.timing.keys.per_queue
        for i, rp in enumerate(plan.registries):
            yield self._taker(i, rp), commands(rp, prefixes[rp.status] + rp.raw)

    def _taker(self, i: int, rp: RegistryPlan):
        def take(replies: list) -> None:
            self.replies[i] = reply(rp, replies)
        return take

    def third(self, batch: Batch) -> None:
        if self.plan is None:
            return
        self.selection = self.timing.tracker.select(self.plan, self.replies)
        to_read = self.selection.to_read
        if to_read:
            job, fields = self.timing.keys.per_queue["job"], self.timing.fields
            with_exc = (*fields, EXC_INFO)
            registries = self.plan.registries
            batch.add_group(self._take_hashes, [
                ("HMGET", job + c.member, *(with_exc if registries[c.registry].status == "failed" else fields))
                for c in to_read], quiet=True)

    def _take_hashes(self, replies: list) -> None:
        n = len(self.timing.fields)
        self.hashes = [r if r is None or len(r) == n else r[:n] for r in replies]
        self.exc_info = [r[n] if r is not None and len(r) > n else None for r in replies]

    def failed_in_windows(self) -> list[tuple[str, bytes]]:
        """After ``third``: (queue, job id) of the failed jobs whose hashes are read from a TTL
        window. The probe's and the sweep's finds are old entries (their TTL's window counts them
        on a later scrape, if ever), and an idle registry has none."""
        if self.plan is None or self.selection is None:
            return []
        registries = self.plan.registries
        return [(registries[c.registry].queue, c.member) for c in self.selection.to_read
                if c.window is not None and registries[c.registry].status == "failed"]

    def result(self, given: Given) -> TimingResult:
        """The tracker moves its cursors and says which jobs ended; they are counted and timed,
        and so are the new jobs of RQ 0.x's failed queue."""
        timing, problems = self.timing, list[Problem]()
        outcome: Outcome = _NOTHING_ENDED
        exc_info: dict[tuple[str, bytes], bytes | None] = {}
        if self.plan is not None and self.selection is not None:
            # The reader counts each queue's failed jobs kept forever: it reads them apart anyway,
            # as RQ's count of failed jobs leaves the expired ones out.
            failed_forever = {q.name: q.failed_forever for q in given.snapshot.queues}
            outcome = timing.tracker.apply(self.plan, self.replies, self.selection, self.hashes, failed_forever)
            problems += outcome.problems
            problems += timing.times.record(outcome)
            registries = self.plan.registries
            exc_info = {(registries[c.registry].queue, c.member): value
                        for c, value in zip(self.selection.to_read, self.exc_info)
                        if c.window is not None and registries[c.registry].status == "failed"}
        old = given.result(FailedQueue)
        if old is not None and old.legacy:
            timing.forget(FAILED_QUEUE)  # tracked on the scrape that told
            problems += timing.times.record(Outcome(old.ended, (), ()))
        totals = timing.times.totals({*timing.tracker.queues, *(q.name for q in given.snapshot.queues)})
        return TimingResult(outcome, exc_info, totals, tuple(problems))
