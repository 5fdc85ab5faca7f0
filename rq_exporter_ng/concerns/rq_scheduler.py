"""rq-scheduler (PyPI ``rq-scheduler``, the ``rqscheduler`` process): the jobs it holds, per queue and
function, those past due, and whether an ``rqscheduler`` is alive.

What rq-scheduler 0.14 keeps (rq_scheduler/scheduler.py; its key names do not follow RQ 3.0's
RQ_KEY_PREFIX, the exporter's --key-prefix is applied all the same):
- zset ``rq:scheduler:scheduled_jobs``: job id -> when it is due (epoch s). ``rqscheduler`` moves
  the due ones to their queue every ``--interval`` (60 s), and puts cron and interval jobs back with
  their next time, under the same id. A cron job registered again at every deploy is one more id.
- the job hashes: ``origin`` is the queue, ``data`` holds the function (read as jobfunc.py does).
- hash ``rq:scheduler_instance:<uuid>`` per running ``rqscheduler`` (TTL interval + 10 s, ``death``
  set on a clean stop). Its name is random and no set lists it: while the zset holds jobs and no
  live instance is known, each scrape takes one ``SCAN ... MATCH`` step (``SCAN_COUNT`` keys, ~3 ms
  of Redis at a million keys), the cursor kept across scrapes; each instance found is checked every
  scrape. A new ``rqscheduler`` is found within (keys in the database / SCAN_COUNT) scrapes; one
  that dies is seen at once (its hash expires). ``rq:scheduler_lock`` is no sign of life: it is
  held only while jobs are moved.

Reads: round 2, ZCARD, ZCOUNT of the past-due jobs and ZRANGE WITHSCORES of the first
``MAX_TRACKED`` jobs by due time, the SCAN step (while searching) and an HMGET per known instance;
round 3, an HMGET (origin, data) per job not read before (at most ``MAX_NEW`` a scrape) and per instance just found.
Each job's queue and function are remembered while it is in the zset (~150 bytes a job).
Jobs past ``MAX_TRACKED`` are counted (``rq_scheduler_jobs_untracked``), not read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads, taken
from rq_exporter_ng.families.table import table
from rq_exporter_ng.jobfunc import function_name
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem

MAX_TRACKED = 20_000  # jobs whose queue and function are read (the first by due time)
MAX_NEW = 5_000  # job hashes read per scrape
SCAN_COUNT = 5_000  # keys one SCAN step looks at
UNKNOWN = "unknown"  # the queue / function of a job not read (yet), or whose hash is gone
OTHER = "other"  # functions past the func limit


@dataclass
class ScheduleTrack:
    """Kept across scrapes."""

    jobs: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # job id -> (queue, function)
    instances: set[bytes] = field(default_factory=set)  # rqscheduler instance keys found
    cursor: int = 0
    # Look for instances (SCAN) only while rq-scheduler holds jobs and none is known alive: a SCAN
    # step of 5,000 keys costs Redis ~3 ms at a million keys.
    searching: bool = True


@dataclass(frozen=True)
class ScheduleState:
    """One scrape's reading: the metrics' data."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, function) -> jobs
    overdue: dict[str, int] = field(default_factory=dict)  # queue -> jobs past due
    untracked: int = 0
    live_instances: int = 0
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class ScheduleOptions:
    timing_func_limit: int  # distinct functions; the rest are ``other``


class RqScheduler(Concern[ScheduleOptions, "ScheduleReads", ScheduleState]):
    @classmethod
    def options(cls, settings: Settings) -> ScheduleOptions | None:
        # Its families are global (catalogue scope): one exporter of a sharded set reads them.
        return taken(ScheduleOptions, settings) if settings.exports_globals else None

    def __init__(self, options: ScheduleOptions, keys: Keys) -> None:
        self.func_limit = options.timing_func_limit
        self.keys = keys
        self.track = ScheduleTrack()

    def reads(self, given: Given) -> ScheduleReads:
        return ScheduleReads(self)

    def families(self, result: ScheduleState) -> Iterator[Metric]:
        return families(result)


class ScheduleReads(Reads[ScheduleState]):
    """One scrape's reads of rq-scheduler's keys, in rounds 2 and 3."""

    def __init__(self, schedules: RqScheduler) -> None:
        self.track = schedules.track
        self.func_limit = schedules.func_limit
        self.zset = schedules.keys.scheduled_jobs
        self.pattern = schedules.keys.scheduler_instances
        self.job = schedules.keys.kind("job")
        self.now = 0.0
        self.read = False
        self.total = 0
        self.past_due = 0
        self.members: list[tuple[bytes, bytes | float]] = []
        self.cursor: int | None = None
        self.found: list[bytes] = []
        self.found_late = False  # found by a SCAN in round 3: they exist, no round is left to check them
        self.checked: list[tuple[bytes, list | None]] = []
        self.asked: list[bytes] = []
        self.answers: list[list | None] = []

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        self.now = now
        batch.add_group(self._take_zset, [
            ("ZCARD", self.zset),
            ("ZCOUNT", self.zset, "-inf", f"({now!r}"),
            ("ZRANGE", self.zset, 0, MAX_TRACKED - 1, "WITHSCORES"),
        ])
        if self.track.searching:
            self._scan(batch)
        known = sorted(self.track.instances)
        if known:
            batch.add_group(_checker(self, known), [("HMGET", key, b"birth", b"death") for key in known])

    def _take_zset(self, replies: list) -> None:
        self.read = True
        total, past_due, members = replies
        self.total = total if isinstance(total, int) else 0
        self.past_due = past_due if isinstance(past_due, int) else 0
        self.members = parse.zset_pairs(members)

    def _scan(self, batch: Batch) -> None:
        batch.add(self._take_scan, "SCAN", self.track.cursor, "MATCH", self.pattern, "COUNT", SCAN_COUNT)

    def _take_scan(self, reply: list) -> None:
        cursor, keys = reply
        self.cursor = int(cursor)
        self.found = [k for k in keys if k not in self.track.instances]

    def third(self, batch: Batch) -> None:
        if not self.read:
            return
        jobs = self.track.jobs
        self.asked = [job_id for job_id, _ in self.members if job_id not in jobs][:MAX_NEW]
        if self.asked:
            batch.add_group(self._take_jobs, [("HMGET", self.job + i, b"origin", b"data") for i in self.asked])
        if self.found:
            batch.add_group(_checker(self, self.found), [("HMGET", k, b"birth", b"death") for k in self.found])
        elif self.cursor is None and self.total > 0 and not self.track.instances:
            # rq-scheduler's jobs appeared since the last scrape (which had none, so did not search):
            # search now rather than report no rqscheduler for a scrape.
            self.found_late = True
            self._scan(batch)

    def _take_jobs(self, replies: list) -> None:
        self.answers = replies

    def result(self, given: Given) -> ScheduleState:
        if not self.read:
            return ScheduleState()
        track = self.track
        problems: list[Problem] = []
        for job_id, answer in zip(self.asked, self.answers):
            track.jobs[job_id] = _job(answer, parse.text(self.job + job_id), problems)
        ids = [job_id for job_id, _ in self.members]
        if self.asked or len(track.jobs) != len(ids):  # else every member is known, and nothing else
            present = set(ids)
            track.jobs = {i: v for i, v in track.jobs.items() if i in present}
        live = 0
        for key, reply in self.checked:
            alive = isinstance(reply, list) and reply[0] is not None and reply[1] is None
            live += alive
            if isinstance(reply, list) and reply[0] is None:
                track.instances.discard(key)  # expired: that rqscheduler is gone
            elif isinstance(reply, list):
                track.instances.add(key)
        if self.found_late:
            # Their hashes exist (an instance's key expires with its process): alive until the next
            # scrape reads whether a clean stop marked a death.
            live += len(self.found)
            track.instances.update(self.found)
        if self.cursor is not None:
            track.cursor = self.cursor
        track.searching = self.total > 0 and not live
        # ZRANGE lists by due time: the past-due jobs (ZCOUNT, same round) come first.
        due = ids[:self.past_due]
        return state(track.jobs, ids, due, self.total, self.past_due, live, self.func_limit, tuple(problems))


def _checker(scan: ScheduleReads, keys: list[bytes]) -> Callable[[list], None]:
    def take(replies: list) -> None:
        scan.checked.extend(zip(keys, replies))
    return take


def state(known: dict[bytes, tuple[str, str]], members: list[bytes], due: list[bytes], total: int, past_due: int,
          live: int, func_limit: int, problems: tuple[Problem, ...] = ()) -> ScheduleState:
    """Counts per (queue, function) of the jobs read, the rest of ``total`` untracked; past-due jobs
    per queue, those beyond the ones read under ``unknown``. Past ``func_limit`` functions (the
    least scheduled), the rest are ``other``."""
    unread = (UNKNOWN, UNKNOWN)
    pairs = Counter(known.get(i, unread) for i in members)
    by_func: Counter[str] = Counter()
    for (_, func), n in pairs.items():
        by_func[func] += n
    named = {f for f, _ in sorted(by_func.items(), key=lambda kv: (-kv[1], kv[0]))[:func_limit]}
    jobs: Counter[tuple[str, str]] = Counter()
    for (queue, func), n in pairs.items():
        jobs[(queue, func if func in named else OTHER)] += n
    overdue = Counter(known.get(i, unread)[0] for i in due)
    if past_due > len(due):
        overdue[UNKNOWN] += past_due - len(due)
    return ScheduleState(dict(jobs), dict(overdue), max(0, total - len(members)), live, problems)


def _job(answer: list | None, key: str, problems: list[Problem]) -> tuple[str, str]:
    if not isinstance(answer, list) or answer[0] is None:
        problems.append(Problem("missing_job", key, "job in rq-scheduler's zset without a hash or origin"))
        return UNKNOWN, UNKNOWN
    return parse.text(answer[0]), function_name(answer[1]) or UNKNOWN


def families(s: ScheduleState) -> Iterator[Metric]:
    yield table("rq_scheduler_jobs", [(key, n) for key, n in sorted(s.jobs.items())])
    queues = sorted({q for q, _ in s.jobs} | set(s.overdue))
    yield table("rq_scheduler_jobs_overdue", [((q,), s.overdue.get(q, 0)) for q in queues])
    yield table("rq_scheduler_jobs_untracked", [((), s.untracked)])
    yield table("rq_scheduler_up", [((), 1 if s.live_instances else 0)])
