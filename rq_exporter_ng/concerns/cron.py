"""RQ's own cron scheduler (``rq cron CONFIG``, RQ >= 2.4): who runs the cron jobs, and when each
last ran and runs next.

What RQ keeps (rq/cron.py, rq/cron_scheduler_registry.py, rq/cron_job_registry.py of 2.12 and 3.0):
- zset ``rq:cron_schedulers``: scheduler name -> its last heartbeat (epoch s). A clean stop removes
  the member; a killed scheduler leaves it, with a score that no longer moves. A heartbeat older
  than RQ's scheduler TTL (120 s, a constant of RQ's) is a dead scheduler.
- hash ``rq:cron_scheduler:<name>`` (TTL 120 s, refreshed by the heartbeat): ``cron_jobs`` is a
  JSON list, one object per job with ``name``, ``queue_name``, ``func_name``,
  ``latest_enqueue_time`` and ``next_enqueue_time`` (RQ's UTC timestamps, or null).
- zset ``rq:cron_jobs``: cron job name -> its last enqueue (epoch s), kept for a year.

Reads: round 2, the two zsets (ZRANGE WITHSCORES, at most ``MAX_SCHEDULERS`` / ``MAX_JOBS``);
round 3, one HMGET per listed scheduler. A killed scheduler's hash expires 120 s after its last
heartbeat, and with it the only record of its jobs' next enqueue times: what was read from it is
remembered as long as the scheduler stays listed in ``rq:cron_schedulers`` (a clean stop forgets
it), so a cron job whose scheduler was killed keeps its queue and a next enqueue time that passes,
and ``RQCronJobLate`` can fire. Memory: each listed scheduler's jobs (~200 bytes a job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, NoOptions, Reads
from rq_exporter_ng.families.table import table
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem

SCHEDULER_TTL = 120.0  # rq.defaults.DEFAULT_CRON_SCHEDULER_TTL (2.4 to 3.0); not stored in Redis
MAX_SCHEDULERS = 100
MAX_JOBS = 1000


@dataclass(frozen=True)
class CronJob:
    name: str
    queue: str
    next_enqueue: float | None = None
    latest_enqueue: float | None = None


@dataclass(frozen=True)
class CronJobState:
    """One (name, queue): the series of ``rq_cron_job_*``."""

    name: str
    queue: str
    next_enqueue: float | None
    latest_enqueue: float | None
    live_schedulers: int  # live schedulers that list it: 2 enqueue it twice


@dataclass(frozen=True)
class CronState:
    live: int = 0
    dead: int = 0
    jobs: tuple[CronJobState, ...] = ()
    known_jobs: int = 0  # distinct cron job names
    problems: tuple[Problem, ...] = ()


@dataclass
class CronTrack:
    """Kept across scrapes: the jobs last read from each scheduler still listed."""

    jobs: dict[str, tuple[CronJob, ...]] = field(default_factory=dict)


class Cron(Concern[NoOptions, "CronReads", CronState]):
    @classmethod
    def options(cls, settings: Settings) -> NoOptions | None:
        # Its families are global (catalogue scope): one exporter of a sharded set reads them.
        return NoOptions() if settings.exports_globals else None

    def __init__(self, options: NoOptions, keys: Keys) -> None:
        self.keys = keys
        self.track = CronTrack()

    def reads(self, given: Given) -> CronReads:
        return CronReads(self)

    def families(self, result: CronState) -> Iterator[Metric]:
        return families(result)


class CronReads(Reads[CronState]):
    """One scrape's reads of RQ's cron registries, in rounds 2 and 3."""

    def __init__(self, cron: Cron) -> None:
        self.track = cron.track
        self.schedulers_key = cron.keys.cron_schedulers
        self.jobs_key = cron.keys.cron_jobs
        self.hash_prefix = cron.keys.kind("cron_scheduler")
        self.now = 0.0
        self.read = False
        self.heartbeats: list[tuple[bytes, bytes | float]] = []
        self.enqueues: list[tuple[bytes, bytes | float]] = []
        self.hashes: list[bytes | None] = []

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        self.now = now
        batch.add_group(self._take_zsets, [
            ("ZRANGE", self.schedulers_key, 0, MAX_SCHEDULERS - 1, "WITHSCORES"),
            ("ZRANGE", self.jobs_key, 0, MAX_JOBS - 1, "WITHSCORES"),
        ])

    def _take_zsets(self, replies: list) -> None:
        self.read = True
        self.heartbeats, self.enqueues = (parse.zset_pairs(r) for r in replies)

    def third(self, batch: Batch) -> None:
        if self.heartbeats:
            batch.add_group(self._take_hashes,
                            [("HMGET", self.hash_prefix + name, b"cron_jobs") for name, _ in self.heartbeats])

    def _take_hashes(self, replies: list) -> None:
        self.hashes = [r[0] if isinstance(r, list) and r else None for r in replies]

    def result(self, given: Given) -> CronState:
        if not self.read:
            return CronState()
        problems: list[Problem] = []
        listed: dict[str, tuple[float | None, tuple[CronJob, ...]]] = {}
        for (raw, score), value in zip(self.heartbeats, self.hashes + [None] * len(self.heartbeats)):
            name = parse.text(raw)
            beat = _score(score, self.schedulers_key, problems)
            if value is not None:
                parsed = parse_jobs(value, parse.text(self.hash_prefix + raw), problems)
                if parsed is not None:
                    self.track.jobs[name] = parsed
            listed[name] = (beat, self.track.jobs.get(name, ()))
        self.track.jobs = {n: j for n, j in self.track.jobs.items() if n in listed}
        enqueued = {parse.text(raw): _score(score, self.jobs_key, problems) for raw, score in self.enqueues}
        return state(listed, enqueued, self.now, tuple(problems))


def state(listed: dict[str, tuple[float | None, tuple[CronJob, ...]]], enqueued: dict[str, float | None],
          now: float, problems: tuple[Problem, ...] = ()) -> CronState:
    """The schedulers (name -> last heartbeat, their jobs) and rq:cron_jobs (name -> last enqueue) as
    the metrics' data. A job listed by several schedulers takes the times of the one that beat last."""
    live = {name for name, (beat, _) in listed.items() if beat is not None and now - beat <= SCHEDULER_TTL}
    by_job: dict[tuple[str, str], tuple[float, CronJob]] = {}
    counts: dict[tuple[str, str], int] = {}
    for name, (beat, jobs) in listed.items():
        for job in jobs:
            key = (job.name, job.queue)
            counts[key] = counts.get(key, 0) + (name in live)
            if key not in by_job or (beat or 0.0) > by_job[key][0]:
                by_job[key] = (beat or 0.0, job)
    rows = []
    for key, (_, job) in sorted(by_job.items()):
        latest = _latest(job.latest_enqueue, enqueued.get(job.name))
        rows.append(CronJobState(job.name, job.queue, job.next_enqueue, latest, counts[key]))
    # Names rq:cron_jobs knows and no listed scheduler does: their queue is not in Redis any more.
    named = {job.name for _, job in by_job.values()}
    rows += [CronJobState(name, "", None, when, 0) for name, when in sorted(enqueued.items()) if name not in named]
    return CronState(live=len(live), dead=len(listed) - len(live), jobs=tuple(rows),
                     known_jobs=len(named | set(enqueued)), problems=problems)


def parse_jobs(value: bytes, key: str, problems: list[Problem]) -> tuple[CronJob, ...] | None:
    """A scheduler's ``cron_jobs`` field; None (and a problem) when it is not RQ's JSON list."""
    try:
        entries = json.loads(value)
    except ValueError as error:
        problems.append(Problem("bad_json", key, f"cron_jobs: {error}"[:200]))
        return None
    if not isinstance(entries, list):
        problems.append(Problem("bad_json", key, "cron_jobs is not a list"))
        return None
    jobs = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(Problem("bad_json", key, f"cron job without a name: {str(entry)[:100]}"))
            continue
        queue = entry.get("queue_name")
        jobs.append(CronJob(entry["name"], queue if isinstance(queue, str) else "",
                            _when(entry.get("next_enqueue_time"), key, problems),
                            _when(entry.get("latest_enqueue_time"), key, problems)))
    return tuple(jobs)


def _when(value: object, key: str, problems: list[Problem]) -> float | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(f"not an RQ timestamp: {value!r}"[:100])
        return parse.timestamp(value)
    except ValueError as error:
        problems.append(Problem("bad_timestamp", key, str(error)))
        return None


def _score(raw: bytes | float, key: bytes, problems: list[Problem]) -> float | None:
    try:
        return float(raw)
    except ValueError:
        problems.append(Problem("bad_score", parse.text(key), f"score {raw!r}"[:60]))
        return None


def _latest(*candidates: float | None) -> float | None:
    known = [c for c in candidates if c is not None]
    return max(known) if known else None


def families(cron: CronState) -> Iterator[Metric]:
    yield table("rq_cron_schedulers", [((), cron.live)])
    yield table("rq_cron_dead_schedulers", [((), cron.dead)])
    yield table("rq_cron_jobs", [((), cron.known_jobs)])
    jobs = [j for j in cron.jobs if j.queue]
    yield table("rq_cron_job_schedulers", [((j.name, j.queue), j.live_schedulers) for j in jobs])
    yield table("rq_cron_job_next_enqueue_timestamp_seconds",
                [((j.name, j.queue), j.next_enqueue) for j in jobs if j.next_enqueue is not None])
    yield table("rq_cron_job_last_enqueue_timestamp_seconds",
                [((j.name, j.queue), j.latest_enqueue) for j in cron.jobs if j.latest_enqueue is not None])
