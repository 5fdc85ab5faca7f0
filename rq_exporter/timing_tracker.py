"""Job timing's tracker: which finished and failed registry entries are new since the last scrape.

RQ keeps no completion log. A registry entry's score is the worker's clock when it stored the
job (whole seconds) plus the job's TTL (result_ttl or failure_ttl), so the entries of one TTL
``t`` that ended since the last scrape sit in one score window ``[last + t, now + t]``. The
tracker learns, per queue and registry, the set of TTLs in use (a job's TTL is its score minus
its ``ended_at``) and reads one window per TTL each scrape. Each TTL has its own cursor, in
"ended at" seconds (score - ttl), so a TTL learned late is read from the queue's floor onwards.

Exactness:
- windows overlap the previous one by ``slack`` (+ ``TOLERANCE``) seconds for clock skew
  between workers and exporter and for jobs stored a little after they ended; an entry is
  remembered as (member, score) only while a window can return it again, so memory is bounded
  by the jobs of that overlap;
- an entry is counted only by its own TTL (read from its hash), so TTLs whose windows overlap,
  or an old entry of a long TTL whose score passes through a short TTL's window, count once;
- a job that runs again gets a new score, hence a new (member, score): it counts again;
- a TTL seen for the first time is not counted where it was seen: its window starts at the
  queue's floor on the next scrape, which counts every job of that TTL since the floor.

The per-scrape cap bounds the job hashes read. Jobs that just ended are read first; past the cap
they are counted by score as jobs of their window's TTL, untimed. The backlog of a TTL learned
late is not (its window also holds old jobs of other TTLs, counted long ago): its cursor stops
at the first entry left unread, and the next scrapes go on from there.

Finding TTLs nobody told the exporter about, at a cost that does not grow with the registry:
RQ's defaults (500 s results, one year failures) and ``--timing-ttls`` are known from the start;
a job's own ``result_ttl``/``failure_ttl`` fields teach the TTLs of both registries; a probe
above the longest known TTL finds longer ones at once; a bounded sweep walks the rest of the
registry a few entries per scrape (entries that known windows already cover cost nothing).
Entries kept forever (result_ttl=-1 is score +inf, failure_ttl=-1 is score -1) cannot be found
by score: their number is counted and its growth is added to the counters, untimed.

A scrape goes through three phases, each handing the next an immutable result:
``plan`` (what to read) -> the Redis side reads it (timing_redis.py: ``RegistryReply``) ->
``select`` (which job hashes to read) -> ``apply`` (verdicts from timing_rules.py, then the
cursors move) -> ``Outcome`` (the jobs that ended, for timing_histograms.py). Only ``apply``
changes the tracker, and only once the whole read has succeeded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

from rq_exporter.keys import Keys
from rq_exporter.snapshot import Problem
from rq_exporter.timing_rules import (
    JOB_FIELDS,
    TOLERANCE,
    Count,
    Learn,
    Remember,
    judge,
    nearest,
    plain_count,
    ttl_hints,
)
from rq_exporter.timing_rules import Entry as Judged

if TYPE_CHECKING:
    from rq_exporter.timing import TimingOptions

REGISTRIES = ("finished", "failed")  # the registry key kind is also the status label
RQ_DEFAULT_TTL = {"finished": 500, "failed": 31_536_000}
MAX_TTLS = 64  # per queue and registry; more distinct TTLs are not learned (logged once)
PROBE_CHUNK = 20
SWEEP_CHUNK = 20

Entry = tuple[bytes, float]  # (member, score)


class Probe(Enum):
    """How this scrape looks for TTLs longer than any known (timing_redis.py turns it into Redis syntax)."""

    ALONE = "alone"  # a read of its own above the longest window, PROBE_CHUNK entries at most
    # Settled (the last probe found nothing): the longest window's read goes on up to +inf,
    # so the probe costs no command; its reply holds only what arrived since.
    IN_WINDOW = "in window"
    # Likewise, up to +inf included: also counts the finished jobs kept forever (score +inf).
    IN_WINDOW_WITH_FOREVER = "in window, with the jobs kept forever"


# --- state kept across scrapes ---------------------------------------------------------------
@dataclass
class TtlClass:
    cursor: int  # counted up to this "ended at" second (score - ttl); the next window starts here - slack
    # Learned after the floor: its window reads the backlog since the floor. Past the per-scrape
    # cap that backlog is left for the next scrape rather than counted by score, because these
    # windows also hold older jobs of other TTLs that were counted long ago.
    catching_up: bool = False


@dataclass
class RegistryTrack:
    ttls: dict[int, TtlClass] = field(default_factory=dict)  # in increasing TTL order
    # (member, score) -> score - ttl of the window that saw it; dropped once no window can return it.
    seen: dict[Entry, float] = field(default_factory=dict)
    sweep_from: float | None = None
    sweep_skip: int = 0
    forever: int | None = None
    settled: bool = False  # the last probe found no finite entry above the longest window
    full_logged: bool = False


@dataclass
class QueueTrack:
    floor: int  # jobs that ended before this second are history, never counted
    registries: dict[str, RegistryTrack] = field(default_factory=dict)


# --- what passes between the phases ------------------------------------------------------------
# NamedTuples: thousands are built per scrape, and a tuple is the cheapest immutable record.
class Window(NamedTuple):
    ttl: int
    low: int  # lowest score, inclusive
    high: int  # highest score, inclusive


class RegistryPlan(NamedTuple):
    queue: str
    raw: bytes  # the queue's name as in Redis
    status: str
    windows: tuple[Window, ...]  # one per known TTL, longest last
    probe: Probe
    probe_above: int  # the probe looks at finite scores above this (the longest window's top)
    sweep: tuple[float, int] | None  # (from score, entries at that score to skip); None: not this scrape


class RegistryReply(NamedTuple):
    windows: Mapping[int, Sequence[Entry]]  # TTL -> entries, only windows that returned some
    probe: Sequence[Entry] = ()  # at most PROBE_CHUNK
    probe_found: bool | None = None  # were there entries above probe_above? None: no answer
    sweep: Sequence[Entry] = ()
    forever: int | None = None  # entries kept forever; None: no answer


@dataclass(frozen=True)
class Plan:
    now: int
    registries: tuple[RegistryPlan, ...]
    new_queues: Mapping[str, QueueTrack]  # tracks of queues first seen now, kept by apply


class Candidate(NamedTuple):
    registry: int  # index in Plan.registries
    member: bytes
    score: float
    window: int | None  # the TTL window that returned it; None: found by the probe or the sweep
    read_hash: bool = True  # False: past the per-scrape cap, counted by score alone


@dataclass(frozen=True)
class Selection:
    candidates: tuple[Candidate, ...]
    sweep_afforded: Mapping[int, int]  # registry -> sweep entries examined, where the budget cut it
    deferred: Mapping[int, Mapping[int, float]]  # registry -> {catching-up TTL: first entry left unread}

    @property
    def to_read(self) -> list[Candidate]:
        return [c for c in self.candidates if c.read_hash]


class Ended(NamedTuple):
    """A job counted this scrape; ``fields``: its hash's values in JOB_FIELDS order when it is to be
    timed, else None."""

    queue: str
    status: str
    member: bytes
    ended: float | None = None
    fields: Sequence[bytes | None] | None = None


@dataclass(frozen=True)
class Outcome:
    ended: tuple[Ended, ...]
    kept_forever: tuple[tuple[str, str, int], ...]  # (queue, status, how many more than last scrape)
    problems: tuple[Problem, ...]


class Tracker:
    def __init__(self, options: TimingOptions, keys: Keys) -> None:
        self.max_jobs = options.timing_max_jobs_per_scrape
        self.discovery = options.timing_discovery_per_scrape
        self.slack = options.timing_clock_slack
        self.extra_ttls = tuple(t for t in options.timing_ttls if t > 0)
        self.keys = keys
        self.queues: dict[str, QueueTrack] = {}
        self.last_now: int | None = None
        self._sweep_turn = 0

    @property
    def edge(self) -> int:
        return self.slack + TOLERANCE

    # -- phase 1: what to read ----------------------------------------------------------------
    def plan(self, queues: Iterable[tuple[bytes, str]], now: float) -> Plan:
        n, edge = int(now), self.edge
        plans: list[RegistryPlan] = []
        new_queues: dict[str, QueueTrack] = {}
        for raw, name in queues:
            track = self.queues.get(name)
            if track is None:
                # A queue first seen now may have had jobs since the previous scrape (it did not
                # exist then); on the very first scrape, history is not counted: floor = now.
                track = new_queues[name] = self._new_queue(n)
            for status in REGISTRIES:
                reg = track.registries[status]
                windows = tuple([Window(t, max(c.cursor - edge, track.floor) + t, n + edge + t)
                                 for t, c in reg.ttls.items()])
                probe = Probe.ALONE
                if reg.settled and windows:
                    probe = Probe.IN_WINDOW_WITH_FOREVER if status == "finished" and reg.forever == 0 \
                        else Probe.IN_WINDOW
                plans.append(RegistryPlan(name, raw, status, windows, probe,
                                          windows[-1].high if windows else n, None))
        # The sweep is a backstop: a few registries per scrape, in turn.
        if plans and self.discovery > 0:
            turns = min(max(1, self.discovery // SWEEP_CHUNK), len(plans))
            start = self._sweep_turn % len(plans)
            for i in range(turns):
                k = (start + i) % len(plans)
                rp = plans[k]
                reg = self._track(new_queues, rp.queue).registries[rp.status]
                from_score, skip = (n + 1, 0) if reg.sweep_from is None or reg.sweep_from < n + 1 \
                    else (reg.sweep_from, reg.sweep_skip)
                plans[k] = rp._replace(sweep=(from_score, skip))
            self._sweep_turn = (start + turns) % len(plans)
        return Plan(n, tuple(plans), new_queues)

    def _new_queue(self, now: int) -> QueueTrack:
        first = self.last_now is None
        track = QueueTrack(floor=now if self.last_now is None else self.last_now)
        for status in REGISTRIES:
            # Jobs kept forever of a queue that appears later are new, too: they count from 0.
            reg = RegistryTrack(forever=None if first else 0)
            for t in sorted({RQ_DEFAULT_TTL[status], *self.extra_ttls}):
                reg.ttls[t] = TtlClass(cursor=track.floor)
            track.registries[status] = reg
        return track

    def _track(self, new_queues: Mapping[str, QueueTrack], queue: str) -> QueueTrack:
        """The queue's track, kept or first seen this scrape (kept by apply)."""
        return self.queues.get(queue) or new_queues[queue]

    # -- phase 2: which job hashes to read ------------------------------------------------------
    def select(self, plan: Plan, replies: Sequence[RegistryReply | None]) -> Selection:
        """New entries to read, within the per-scrape caps; the rest are counted by score alone."""
        timing_left, discovery_left = self.max_jobs, self.discovery
        candidates: list[Candidate] = []
        afforded: dict[int, int] = {}
        deferred: dict[int, dict[int, float]] = {}
        for i, (rp, reply) in enumerate(zip(plan.registries, replies)):
            if reply is None or not (reply.windows or reply.probe or reply.sweep):
                continue  # most registries, most scrapes
            track = self._track(plan.new_queues, rp.queue)
            reg = track.registries[rp.status]
            taken: set[Entry] = set()
            # Jobs that just ended first; a backlog of a TTL learned late gets what is left.
            for w in sorted(rp.windows, key=lambda w: (reg.ttls[w.ttl].catching_up, w.ttl)):
                for entry in reply.windows.get(w.ttl, ()):
                    if entry in reg.seen or entry in taken:
                        continue
                    taken.add(entry)
                    use = timing_left > 0
                    timing_left -= use
                    if not use and reg.ttls[w.ttl].catching_up and self.max_jobs > 0:
                        deferred.setdefault(i, {}).setdefault(w.ttl, entry[1] - w.ttl)  # by score: the lowest
                        continue
                    candidates.append(Candidate(i, entry[0], entry[1], w.ttl, read_hash=use))
            # Inside a known TTL's range since the floor: its window reads it (or did).
            known = [(track.floor + t, plan.now + self.edge + t) for t in reg.ttls]
            for k, entry in enumerate([*reply.probe, *reply.sweep]):
                if discovery_left <= 0:
                    afforded[i] = max(0, k - len(reply.probe))  # the sweep goes on from here
                    break
                if entry in reg.seen or entry in taken or any(lo <= entry[1] <= hi for lo, hi in known):
                    continue
                taken.add(entry)
                discovery_left -= 1
                candidates.append(Candidate(i, entry[0], entry[1], None))
        return Selection(tuple(candidates), afforded, deferred)

    # -- phase 3: after a successful read, the verdicts; then the cursors move --------------------
    def apply(self, plan: Plan, replies: Sequence[RegistryReply | None], selection: Selection,
              hashes: Sequence[Sequence[bytes | None] | None],
              failed_forever: Mapping[str, int | None] | None = None) -> Outcome:
        """``hashes``: the answers to HMGET JOB_FIELDS of ``selection.to_read``, in order (None: an
        error reply). ``failed_forever``: queue -> failed jobs kept forever (the reader counts them)."""
        self.queues.update(plan.new_queues)
        n, edge = plan.now, self.edge
        ended: list[Ended] = []
        problems: list[Problem] = []
        learned: dict[tuple[str, str], set[int]] = {}  # (queue, status) -> TTLs learned this scrape
        job_prefix = self.keys.kind("job")
        answers = iter(hashes)
        current = -1
        for c in selection.candidates:
            if c.registry != current:  # candidates come registry by registry
                current = c.registry
                rp = plan.registries[current]
                track = self.queues[rp.queue]
                reg = track.registries[rp.status]
                # Where this scrape's windows start, in "ended at" seconds (as plan() placed them), and
                # the TTLs no other known TTL is near, for plain_count.
                lows = {w.ttl: w.low - w.ttl for w in rp.windows}
                alone = {t for t in reg.ttls if all(abs(t - u) > 2 * TOLERANCE for u in reg.ttls if u != t)}
            answer = next(answers) if c.read_hash else None
            if answer is not None and c.window in alone and (rp.queue, rp.status) not in learned:
                when = plain_count(answer, c.score, c.window, lows[c.window])
                if when is not None:
                    key = (c.member, c.score)
                    if key not in reg.seen:
                        reg.seen[key] = c.score - c.window
                        ended.append(Ended(rp.queue, rp.status, c.member, when, answer))
                    continue
            fields = (dict(zip(JOB_FIELDS, answer)) if answer is not None else {}) if c.read_hash else None
            for hint in ttl_hints(fields or {}):
                self._learn(track, rp.queue, hint.status, hint.ttl, learned, problems)
            entry = Judged(rp.status, c.member, c.score, c.window, fields, reg.ttls,
                           learned.get((rp.queue, rp.status), ()), track.floor, edge, job_prefix)
            for verdict in judge(entry):
                if isinstance(verdict, Problem):
                    problems.append(verdict)
                elif isinstance(verdict, Learn):
                    self._learn(track, rp.queue, verdict.status, verdict.ttl, learned, problems)
                elif isinstance(verdict, Remember):
                    key = (c.member, c.score)
                    reg.seen[key] = max(reg.seen.get(key, -math.inf), verdict.until)
                elif isinstance(verdict, Count) and (c.member, c.score) not in reg.seen:
                    reg.seen[(c.member, c.score)] = c.score - verdict.ttl
                    ended.append(Ended(rp.queue, rp.status, c.member, verdict.ended,
                                       answer if verdict.timed else None))
        kept_forever = []
        for i, (rp, reply) in enumerate(zip(plan.registries, replies)):
            reg = self.queues[rp.queue].registries[rp.status]
            self._move_cursors(reg, rp, n, selection.deferred.get(i) if selection.deferred else None)
            if reply is None:
                continue
            if rp.sweep is not None:
                self._advance_sweep(reg, rp, reply.sweep, selection.sweep_afforded.get(i))
            if reply.probe_found is not None:
                reg.settled = not reply.probe_found
            forever = reply.forever if rp.status == "finished" else (failed_forever or {}).get(rp.queue)
            if forever is not None:
                if reg.forever is not None and forever > reg.forever:
                    kept_forever.append((rp.queue, rp.status, forever - reg.forever))
                reg.forever = forever
        self.last_now = n
        return Outcome(tuple(ended), tuple(kept_forever), tuple(problems))

    def _move_cursors(self, reg: RegistryTrack, rp: RegistryPlan, n: int, deferred: Mapping[int, float] | None) -> None:
        # (a window's TTL was known before this scrape, so it is never one learned in it)
        for w in rp.windows:
            ttl = reg.ttls[w.ttl]
            if deferred and w.ttl in deferred:
                ttl.cursor = max(ttl.cursor, int(deferred[w.ttl]))
            elif ttl.cursor < n or ttl.catching_up:
                ttl.cursor, ttl.catching_up = max(ttl.cursor, n), False
        if reg.seen:
            # Keep what a window may return again: a catching-up window starts further back.
            keep = min([n, *(c.cursor for c in reg.ttls.values() if c.catching_up)]) - self.edge
            reg.seen = {k: v for k, v in reg.seen.items() if v >= keep}

    def _learn(self, track: QueueTrack, queue: str, status: str, ttl: int,
               learned: dict[tuple[str, str], set[int]], problems: list[Problem]) -> None:
        reg = track.registries[status]
        if ttl <= 0 or nearest(reg.ttls, ttl) is not None:
            return
        if len(reg.ttls) >= MAX_TTLS:
            if not reg.full_logged:
                reg.full_logged = True
                problems.append(Problem("too_many_ttls", f"{queue}:{status}",
                                        f"more than {MAX_TTLS} distinct TTLs; TTL {ttl} is not tracked"))
            return
        reg.ttls[ttl] = TtlClass(cursor=track.floor, catching_up=True)
        reg.ttls = dict(sorted(reg.ttls.items()))
        learned.setdefault((queue, status), set()).add(ttl)

    @staticmethod
    def _advance_sweep(reg: RegistryTrack, rp: RegistryPlan, entries: Sequence[Entry], afforded: int | None) -> None:
        if rp.sweep is None:
            return
        cut = afforded is not None
        if cut:
            entries = entries[:afforded]
            if not entries:
                return  # nothing afforded: same place next time
        if len(entries) < SWEEP_CHUNK and not cut:
            reg.sweep_from, reg.sweep_skip = None, 0  # reached the top: start again at the bottom
            return
        last = entries[-1][1]
        same = sum(1 for _, score in entries if score == last)
        start, skip = rp.sweep
        reg.sweep_from = last
        reg.sweep_skip = same + (skip if last == start else 0)
