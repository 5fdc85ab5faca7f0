"""Running jobs: how long each queue's longest-running started job has been running, and each
worker's current job.

A job running for an hour on a live, heartbeating worker changes no other series. Its start is
the job hash's ``started_at``, which every RQ version writes when a worker starts the job (RQ
3.0 included: ``Job.prepare_for_execution``), so one read serves every layout:

- round 2, per queue: ``ZRANGEBYSCORE rq:wip:<queue> (now +inf LIMIT 0 MAX_PER_QUEUE``, the
  started registry's members whose heartbeat deadline has not passed (those whose deadline
  passed are abandoned, ``rq_queue_abandoned_jobs``). A member is the job id (RQ < 2.0) or
  ``<job id>:<execution id>`` (RQ >= 2.0, the execution id 32 hex digits);
- round 3: ``HMGET rq:job:<id> started_at status worker_name data`` per member not read before,
  at most ``MAX_JOBS`` a scrape. ``data`` gives the job's function (read as jobfunc.py does,
  never unpickled): ``rq_queue_longest_running_job_by_func_seconds``, per queue and function, the
  functions capped by ``--timing-func-limit`` (those with the longest runs kept, the rest
  ``other``).

A member of RQ >= 2.0 names one execution, whose start and worker never change: it is read once
and kept while it stays in the registry (``RunningTrack``), so a long job costs one hash read, not
one a scrape. A member of RQ < 2.0 is the job id, which the next run of the same job reuses (a
retry, a requeue): it is read every scrape.

Started jobs are about as many as busy workers, hence the caps: past 1,000 started jobs in a
queue, the longest-running of the 1,000 with the earliest heartbeat deadlines counts. A job
that ended between rounds 2 and 3 (status no longer ``started``, or its hash deleted with
``result_ttl=0``) is no problem of the data: it is left out silently.

A worker's current job is the started job whose ``worker_name`` (RQ >= 1.7) is the worker, else
the one its hash's ``current_job`` (RQ <= 2.x) names; RQ 3.0 drops ``current_job`` and keeps
``worker_name``. Only the jobs of the queues the exporter reads count; except in the exporter of
a sharded set (--shard, or --shard-globals given) that exports the worker series: a worker may run
a job of any shard's queue, so that one also reads the started registries of the other shards'
queues (round 1: the queue set; round 2: their registries), for rq_worker_current_job_seconds only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads
from rq_exporter_ng.families.table import table
from rq_exporter_ng.jobfunc import function_name
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem, Snapshot

MAX_PER_QUEUE = 1_000  # started registry members read per queue and scrape
MAX_JOBS = 10_000  # job hashes read per scrape
FIELDS = (b"started_at", b"status", b"worker_name", b"data")
UNKNOWN = "unknown"  # the function of a job whose data is missing or not an RQ payload
OTHER = "other"  # functions past the func limit
_EXECUTION_ID = re.compile(rb"[0-9a-f]{32}", re.ASCII)


class RunningJob(NamedTuple):
    """One per started job, every scrape: a NamedTuple, built in a fifth of a frozen dataclass's time."""

    queue: str
    job_id: str
    started_at: float  # epoch seconds, the worker's clock
    worker: str | None  # worker_name; None before RQ 1.7
    func: str = UNKNOWN  # the job's function, from its data


@dataclass(frozen=True)
class Running:
    """One scrape's started jobs, and what could not be read of them."""

    jobs: tuple[RunningJob, ...] = ()
    problems: tuple[Problem, ...] = ()
    others: tuple[RunningJob, ...] = ()  # of the other shards' queues: for the workers' current jobs only


def job_id(member: bytes) -> bytes:
    """The job id of a started registry member: ``<id>`` or ``<id>:<execution id>``."""
    cut = len(member) - 33
    if cut > 0 and member[cut] == 58 and _EXECUTION_ID.fullmatch(member, cut + 1):  # 58: b":"
        return member[:cut]
    return member


class RunningTrack:
    """The executions read on earlier scrapes, by queue and registry member: the process's memory
    of what cannot change. Holds only the members of the latest successful read."""

    def __init__(self) -> None:
        self.known: dict[str, dict[bytes, RunningJob]] = {}


@dataclass(frozen=True)
class RunningOptions:
    per_worker_metrics: bool  # rq_worker_current_job_seconds
    timing_func_limit: int  # distinct functions of rq_queue_longest_running_job_by_func_seconds
    # The queues of the other shards whose started jobs count for the workers' current jobs: None
    # but in the shard of a sharded set that exports the worker series.
    others: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class RunningResult:
    """The started jobs, with the snapshot whose queues and workers get a row each."""

    running: Running
    snapshot: Snapshot

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.running.problems


class RunningJobs(Concern[RunningOptions, "RunningReads", RunningResult]):
    @classmethod
    def options(cls, settings: Settings) -> RunningOptions:
        whole = settings.sharded and settings.exports_globals and settings.per_worker_metrics
        # Under --shard the other shards share this one's patterns; split by patterns, the others'
        # queues are all those this one leaves out.
        hashed = settings.shard is not None
        others = (lambda name: not settings.wants_queue(name) and (not hashed or settings.wants_pattern(name))) \
            if whole else None
        return RunningOptions(settings.per_worker_metrics, settings.timing_func_limit, others)

    def __init__(self, options: RunningOptions, keys: Keys) -> None:
        self.per_worker = options.per_worker_metrics
        self.func_limit = options.timing_func_limit
        self.others = options.others
        self.keys = keys
        self.track = RunningTrack()

    def reads(self, given: Given) -> RunningReads:
        return RunningReads(self)

    def families(self, result: RunningResult) -> Iterator[Metric]:
        return families(result.running, result.snapshot, per_worker=self.per_worker, func_limit=self.func_limit)


class RunningReads(Reads[RunningResult]):
    """One scrape's reads of the started registries, in rounds 2 and 3."""

    def __init__(self, concern: RunningJobs) -> None:
        self.keys = concern.keys
        self.track = concern.track
        self.others = concern.others
        self.queue_members: list[bytes] = []
        self.own = 0  # names[:own] are the queues read; the rest, the other shards'
        self.kept: list[tuple[bytes, RunningJob]] = []  # (member, job): known executions still started
        self.names: list[str] = []
        self.members: list[list | None] = []
        self.asked: list[tuple[str, bytes, bytes]] = []  # (queue, member, job id), in HMGET order
        self.answers: list[list | None] = []

    def first(self, batch: Batch) -> None:
        if self.others is not None:
            # Quiet: the reader reads this set too and reports its errors.
            batch.add_group(self._take_queue_members, [("SMEMBERS", self.keys.queues)], quiet=True)

    def _take_queue_members(self, replies: list) -> None:
        self.queue_members = sorted(replies[0] or ())

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        self.own = len(queues)
        if self.others is not None:
            prefix, others = self.keys.queue_member_prefix, self.others
            raws = (m[len(prefix):] for m in self.queue_members if m.startswith(prefix) and m != prefix)
            queues = queues + [(raw, name) for raw, name in ((r, parse.text(r)) for r in raws) if others(name)]
        if not queues:
            return
        wip, above = self.keys.kind("wip"), f"({int(now)}"
        self.names = [name for _, name in queues]
        # Quiet: the reader reads these keys too and reports their errors. One group for every
        # queue: an idle queue costs one command and no Python call of its own.
        batch.add_group(self._take_members, [("ZRANGEBYSCORE", wip + raw, above, "+inf", "LIMIT", 0, MAX_PER_QUEUE)
                                             for raw, _ in queues], quiet=True)

    def _take_members(self, replies: list) -> None:
        self.members = replies

    def third(self, batch: Batch) -> None:
        asked, kept = self.asked, self.kept
        for name, members in zip(self.names, self.members):
            if not members:
                continue
            known = self.track.known.get(name)
            if known is None:
                asked.extend((name, m, job_id(m)) for m in members)
                continue
            for member in members:
                found = known.get(member)
                if found is None:
                    asked.append((name, member, job_id(member)))
                else:
                    kept.append((member, found))
        del asked[MAX_JOBS:]
        if asked:
            job = self.keys.kind("job")
            # Not quiet: a job key of the wrong type is this reader's to report.
            batch.add_group(self._take_hashes, [("HMGET", job + i, *FIELDS) for _, _, i in asked])

    def _take_hashes(self, replies: list) -> None:
        self.answers = replies

    def result(self, given: Given) -> RunningResult:
        """The started jobs as plain data; the track keeps this read's executions."""
        jobs: list[RunningJob] = [found for _, found in self.kept]
        known: dict[str, dict[bytes, RunningJob]] = {}
        for member, found in self.kept:
            known.setdefault(found.queue, {})[member] = found
        problems: list[Problem] = []
        job = self.keys.kind("job")
        names: dict[bytes, str] = {}  # worker names repeat: each decoded once
        timestamp = parse.timestamp
        for (queue, member, raw_id), answer in zip(self.asked, self.answers):
            # None: an error reply (a key of the wrong type, reported). Not "started": it ended
            # between the rounds, or its hash is gone.
            if answer is None or answer[1] != b"started":
                continue
            try:
                when = timestamp(answer[0])
            except ValueError as error:
                problems.append(Problem("bad_timestamp", parse.text(job + raw_id), str(error)[:200]))
                continue
            if when is None:
                problems.append(Problem("bad_timestamp", parse.text(job + raw_id), "started job without started_at"))
                continue
            worker = answer[2]
            if worker:
                name = names.get(worker)
                if name is None:
                    name = names[worker] = parse.text(worker)
            found = RunningJob(queue, parse.text(raw_id), when, name if worker else None,
                               function_name(answer[3]) or UNKNOWN)
            jobs.append(found)
            if len(raw_id) != len(member):  # an execution (RQ >= 2.0): its start never changes
                known.setdefault(queue, {})[member] = found
        self.track.known = known
        own = set(self.names[:self.own])
        mine = tuple(j for j in jobs if j.queue in own)
        others = tuple(j for j in jobs if j.queue not in own) if len(mine) < len(jobs) else ()
        return RunningResult(Running(mine, tuple(problems), others), given.snapshot)


class Earliest(NamedTuple):
    """The earliest start of the started jobs, by queue, by (queue, function), by function and by
    worker (those naming their worker): what every family of this concern is made of."""

    queue: dict[str, float]
    queue_func: dict[tuple[str, str], float]
    func: dict[str, float]
    worker: dict[str, float]


def earliest(running: Running) -> Earliest:
    """One pass over the jobs for all four (~9,000 jobs at 1,000 queues in bench/run.py's dataset:
    2.3 ms, against 4.6 ms for a pass per family)."""
    found = Earliest({}, {}, {}, {})
    by_queue, by_queue_func, by_func, by_worker = found
    inf = math.inf
    for queue, _, started, worker, func in running.jobs:
        if started < by_queue.get(queue, inf):
            by_queue[queue] = started
        if started < by_queue_func.get((queue, func), inf):
            by_queue_func[(queue, func)] = started
        if started < by_func.get(func, inf):
            by_func[func] = started
        if worker is not None and started < by_worker.get(worker, inf):
            by_worker[worker] = started
    return found


def longest_per_queue(running: Running | Earliest, now: float) -> dict[str, float]:
    """Queue -> seconds its longest-running started job has run (clamped at 0: clocks differ)."""
    found = running if isinstance(running, Earliest) else earliest(running)
    return {queue: max(0.0, now - started) for queue, started in found.queue.items()}


def longest_per_queue_and_func(running: Running | Earliest, now: float,
                               func_limit: int | None) -> dict[tuple[str, str], float]:
    """(queue, function) -> seconds its longest-running started job has run (clamped at 0). Past
    ``func_limit`` functions (those whose longest run is shortest), the rest are ``other``."""
    found = running if isinstance(running, Earliest) else earliest(running)
    ranked = sorted(found.func.items(), key=lambda kv: (kv[1], kv[0]))  # the longest run first
    named = {f for f, _ in (ranked if func_limit is None else ranked[:func_limit])}
    longest: dict[tuple[str, str], float] = {}
    for (queue, func), started in found.queue_func.items():
        key = (queue, func if func in named else OTHER)
        longest[key] = max(longest.get(key, 0.0), max(0.0, now - started))
    return longest


def current_per_worker(running: Running, snapshot: Snapshot, found: Earliest | None = None) -> dict[str, float]:
    """Worker name -> seconds its current job has run; 0 for a live worker without one."""
    by_worker = (found or earliest(running)).worker
    if running.others:  # the other shards' queues' jobs: for the workers' current jobs only
        by_worker = dict(by_worker)
        for j in running.others:
            if j.worker is not None and j.started_at < by_worker.get(j.worker, math.inf):
                by_worker[j.worker] = j.started_at
    every = running.jobs + running.others if running.others else running.jobs
    # Before RQ 1.7 a job does not name its worker: the worker hash's current_job names the job.
    wanted = {w.current_job for w in snapshot.workers if w.name not in by_worker and w.current_job}
    by_id = {j.job_id: j.started_at for j in every if j.job_id in wanted} if wanted else {}
    now = snapshot.time
    current = {}
    for w in snapshot.workers:
        started = by_worker.get(w.name)
        if started is None:
            started = by_id.get(w.current_job or "")
        current[w.name] = 0.0 if started is None else max(0.0, now - started)
    return current


def families(running: Running, snapshot: Snapshot, per_worker: bool = True,
             func_limit: int | None = None) -> Iterator[Metric]:
    """The families; ``func_limit`` None: every function named (the concern passes the setting)."""
    found = earliest(running)
    longest = longest_per_queue(found, snapshot.time)
    yield table("rq_queue_longest_running_job_seconds",
                [((q.name,), longest.get(q.name, 0.0)) for q in snapshot.queues])
    yield table("rq_queue_longest_running_job_by_func_seconds",
                sorted(longest_per_queue_and_func(found, snapshot.time, func_limit).items()))
    if per_worker:
        current = current_per_worker(running, snapshot, found)
        yield table("rq_worker_current_job_seconds",
                    [((w.name, ",".join(w.queues)), current[w.name]) for w in snapshot.workers])
