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

A scrape goes through three phases, and between them job timing's reads (reads.py) ask Redis:

1. ``plan``, before round 2: which score windows, probes and sweep chunks to read (``Plan``);
2. ``select``, between rounds 2 and 3: of the entries found (``RegistryReply``), which job
   hashes to read (``Selection``);
3. ``apply``, after the whole read succeeded: the verdicts of rules.py on each entry, then the
   cursors move; the jobs that ended (``Outcome``) go to histograms.py. The common verdict on a
   registry (plain.py) may be made earlier, as its answers arrive in round 3
   (``judge_ahead``, which only reads the tracker): ``apply`` keeps it.

Each phase hands the next an immutable value; only ``apply`` changes the tracker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby, islice
from operator import itemgetter
from typing import TYPE_CHECKING, cast

from rq_exporter_ng.concerns.timing.cursors import move_on
from rq_exporter_ng.concerns.timing.plain import PlainVerdict, alone_ttls, registry_verdict, remember
from rq_exporter_ng.concerns.timing.ranked import count_to
from rq_exporter_ng.concerns.timing.records import (
    SWEEP_CHUNK,
    Candidate,
    Ended,
    Entry,
    Outcome,
    Plan,
    Probe,
    QueueTrack,
    RegistryPlan,
    RegistryReply,
    RegistryTrack,
    Selection,
    TtlClass,
    Window,
)
from rq_exporter_ng.concerns.timing.rules import (
    JOB_FIELDS,
    TOLERANCE,
    Answer,
    Case,
    Count,
    Learn,
    Remember,
    judge,
    nearest,
    plain_count,
    plain_range,
    ttl_hints,
)
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.snapshot import Problem

if TYPE_CHECKING:
    from rq_exporter_ng.concerns.timing.job_timing import TimingOptions

REGISTRIES = ("finished", "failed")  # the registry key kind is also the status label
RQ_DEFAULT_TTL = {"finished": 500, "failed": 31_536_000}
MAX_TTLS = 64  # per queue and registry; more distinct TTLs are not learned (logged once)
PROBE_CHUNK = 20
_REGISTRY, _READ_HASH = itemgetter(0), itemgetter(4)  # of a Candidate (some are plain tuples: records.Candidate)

@dataclass
class _Found:
    """What ``apply`` gathers while it judges one scrape's candidates."""

    ended: list[Ended] = field(default_factory=list)
    failed: list[Ended] = field(default_factory=list)  # those of ``ended`` from failed registries
    problems: list[Problem] = field(default_factory=list)
    learned: dict[tuple[str, str], set[int]] = field(default_factory=dict)  # (queue, status) -> TTLs learned


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
        new = tuple.__new__
        plans: list[RegistryPlan] = []
        new_queues: dict[str, QueueTrack] = {}
        top, known, forever_probe = n + edge, self.queues, Probe.IN_WINDOW_WITH_FOREVER
        alike: dict[tuple[int, int], tuple[Window, ...]] = {}
        append = plans.append
        for raw, name in queues:
            track = known.get(name)
            if track is None:
                # A queue first seen now may have had jobs since the previous scrape (it did not
                # exist then); on the very first scrape, history is not counted: floor = now.
                track = new_queues[name] = self._new_queue(n)
            floor = track.floor
            for status, reg in track.registries.items():  # REGISTRIES' order (_new_queue)
                # tuple.__new__: a NamedTuple's own __new__ is a Python call, and an idle queue's
                # cost is mostly its plan (two registries a queue, every scrape).
                windows: tuple[Window, ...]
                t, c = reg.one_ttl, reg.one_class
                if t is not None and c is not None:  # one TTL, RQ's default: most registries
                    low = c.cursor - edge
                    low = (low if low > floor else floor) + t
                    # Idle registries' windows are alike (their cursors are the last scrape's
                    # time): one tuple for all of them, not 20,000 at 10,000 queues.
                    found = alike.get((t, low))
                    if found is None:
                        found = alike[t, low] = (new(Window, (t, low, top + t)),)
                    windows = found
                else:
                    windows = tuple([new(Window, (t, max(c.cursor - edge, floor) + t, top + t))
                                     for t, c in reg.ttls.items()])
                if windows:
                    probe = Probe.ALONE if not reg.settled else \
                        forever_probe if status == "finished" and reg.forever == 0 else Probe.IN_WINDOW
                    to = None
                    if (remembered := reg.remembered) and len(windows) == 1 and not reg.scored and \
                            probe is not Probe.ALONE:
                        w = windows[0]  # a busy registry's window read: by counts, if they pay (ranked.py)
                        to = count_to(w.low, w.high, n, w.ttl, len(remembered))
                    append(new(RegistryPlan, (name, raw, status, windows, probe, windows[-1].high, None, to)))
                else:
                    append(new(RegistryPlan, (name, raw, status, windows, Probe.ALONE, n, None, None)))
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
            ttls = {t: TtlClass(cursor=track.floor) for t in sorted({RQ_DEFAULT_TTL[status], *self.extra_ttls})}
            track.registries[status] = RegistryTrack(ttls, forever=None if first else 0)
        return track

    def _track(self, new_queues: Mapping[str, QueueTrack], queue: str) -> QueueTrack:
        """The queue's track, kept or first seen this scrape (kept by apply)."""
        return self.queues.get(queue) or new_queues[queue]

    # -- phase 2: which job hashes to read ------------------------------------------------------
    def select(self, plan: Plan, replies: Sequence[RegistryReply | None], unseen: bool = False) -> Selection:
        """New entries to read, within the per-scrape caps; the rest are counted by score alone.
        ``unseen``: the replies' windows already leave out the entries remembered (reads.py)."""
        timing_left, discovery_left = self.max_jobs, self.discovery
        candidates: list[Candidate] = []
        afforded: dict[int, int] = {}
        deferred: dict[int, dict[int, float]] = {}
        for i, (rp, reply) in enumerate(zip(plan.registries, replies)):
            if reply is None or not (reply.windows or reply.probe or reply.sweep):
                continue  # most registries, most scrapes
            track = self._track(plan.new_queues, rp.queue)
            reg = track.registries[rp.status]
            seen, new = reg.seen, tuple.__new__  # Candidate's own __new__ is a Python call: one a job
            if len(rp.windows) == 1 and not reply.probe and not reply.sweep:
                # Most registries with news: one window, its entries unique (one sorted-set read),
                # all within the cap. What the loops below make of it, without a set of them.
                ttl = rp.windows[0].ttl
                entries = reply.windows.get(ttl, ())
                if not unseen:
                    entries = seen.unseen(entries)
                if len(entries) <= timing_left:
                    timing_left -= len(entries)
                    # Plain tuples, not Candidate's (see records.Candidate). Their scores are one float
                    # a score already (registry_reads._entries): held to the scrape's end, 1.7 MB at 5,000 jobs/s.
                    candidates += cast(list[Candidate], [(i, member, score, ttl, True) for member, score in entries])
                    continue
            taken: set[Entry] = set()
            add, append = taken.add, candidates.append
            # Jobs that just ended first; a backlog of a TTL learned late gets what is left.
            for w in sorted(rp.windows, key=lambda w: (reg.ttls[w.ttl].catching_up, w.ttl)):
                ttl, catching_up = w.ttl, reg.ttls[w.ttl].catching_up
                entries = reply.windows.get(ttl, ())
                for entry in (entries if unseen else seen.unseen(entries)):
                    if entry in taken:
                        continue
                    add(entry)
                    if timing_left > 0:
                        timing_left -= 1
                        append(new(Candidate, (i, entry[0], entry[1], ttl, True)))
                    elif catching_up and self.max_jobs > 0:
                        deferred.setdefault(i, {}).setdefault(ttl, entry[1] - ttl)  # by score: the lowest
                    else:
                        append(new(Candidate, (i, entry[0], entry[1], ttl, False)))
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
              hashes: Sequence[Answer | None],
              failed_forever: Mapping[str, int | None] | None = None,
              candidates: Iterable[Candidate] | None = None,
              ahead: Sequence[tuple[int, PlainVerdict]] = ()) -> Outcome:
        """``hashes``: the answers to HMGET JOB_FIELDS of ``selection.to_read``, in order (None: an
        error reply). ``failed_forever``: queue -> failed jobs kept forever (the reader counts them).
        ``candidates``: ``selection.candidates`` handed over apart (reads.py releases them as judged).
        ``ahead``: (registry, verdict) of ``judge_ahead`` on the first registries with candidates, in
        order, from these same answers: kept as they are, and ``candidates`` are those after them.
        Made before anything here, so no TTL was learned before them: the verdicts ``_judge`` would make."""
        self.queues.update(plan.new_queues)
        found = _Found()
        answers = iter(hashes)
        for index, verdict in ahead:  # the first registries with candidates, in order
            planned = plan.registries[index]
            remember(self.queues[planned.queue].registries[planned.status].seen, verdict)
            found.ended += verdict.ended
            if planned.status == "failed":
                found.failed += verdict.ended
            n = len(verdict.ended)  # one a candidate, each read
            next(islice(answers, n, n), None)
        if ahead and candidates is None:
            raise ValueError("apply takes the candidates after those judged ahead")
        # Candidates come registry by registry.
        for index, registry_candidates in groupby(selection.candidates if candidates is None else candidates,
                                                  key=_REGISTRY):
            planned, before = plan.registries[index], len(found.ended)
            self._judge(planned, registry_candidates, answers, found)
            if planned.status == "failed":
                found.failed += found.ended[before:]
        kept_forever, edge, forever = [], self.edge, failed_forever or {}
        for index, (planned, reply) in enumerate(zip(plan.registries, replies)):
            registry = self.queues[planned.queue].registries[planned.status]
            grown = move_on(registry, planned, reply, index, selection, plan.now, forever, edge)
            if grown:
                kept_forever.append((planned.queue, planned.status, grown))
        self.last_now = plan.now
        return Outcome(tuple(found.ended), tuple(kept_forever), tuple(found.problems), tuple(found.failed))

    def judge_ahead(self, plan: Plan, index: int, candidates: Sequence[Candidate],
                    answers: Sequence[Answer | None]) -> PlainVerdict | None:
        """The verdict on registry ``index``'s candidates (all of them, each read: ``answers``) when
        it is plain.py's, made without changing the tracker; None: ``apply`` judges it. Reads.py
        asks as each registry's answers arrive in round 3, while Redis still works on the rest."""
        planned = plan.registries[index]  # (plain_verdict checks each candidate was read)
        registry = self._track(plan.new_queues, planned.queue).registries[planned.status]
        return registry_verdict(planned, registry, candidates, answers)

    def _judge(self, planned: RegistryPlan, candidates: Iterable[Candidate],
               answers: Iterator[Answer | None], found: _Found) -> None:
        """One registry's candidates, each judged (rules.py) and its verdicts applied in turn."""
        queue, status = planned.queue, planned.status
        track = self.queues[queue]
        registry = track.registries[status]
        seen, ended_append = registry.seen, found.ended.append
        plain = (queue, status) not in found.learned  # until a TTL of this registry is learned
        candidates = list(candidates)
        if plain and candidates and set(map(_READ_HASH, candidates)) == {True}:
            mine = list(islice(answers, len(candidates)))
            at_once = registry_verdict(planned, registry, candidates, mine)
            if at_once is not None:  # (most registries with news)
                remember(seen, at_once)
                found.ended += at_once.ended
                return
            answers = iter(mine)
        # Where this scrape's windows start, in "ended at" seconds (as plan() placed them), and the
        # TTLs no other known TTL is near: for those, plain_count decides most entries on its own
        # (registry_verdict works them out itself, for the registries it decides at once).
        window_lows = {w.ttl: w.low - w.ttl for w in planned.windows}
        alone = alone_ttls(registry.ttls)
        job_prefix = self.keys.kind("job")
        # Decided once a score (the candidates come by score, a second's jobs sharing one): whether
        # plain_count's verdict needs no call (plain_range's span, None: ask), where Seen keeps the
        # score's members, and their "remembered until" float (Seen keeps it across scrapes: 60,000
        # entries a registry at 5,000 jobs/s). Forgotten after any other verdict (it may learn a TTL).
        last_score: float | None = None
        last_window: int | None = None
        until = 0.0
        span: tuple[int, int] | None = None
        lo = hi = 0  # span's, while it is not None
        bucket: dict[bytes, float] | None = None
        at = seen.at
        take = answers.__next__
        for _, member, score, window, read_hash in candidates:
            answer = take() if read_hash else None
            if score is not last_score or window != last_window:
                last_score, last_window, bucket, span = score, window, at(score), None
                if plain and window in alone:  # (never None: the probe's and the sweep's finds have no window)
                    until = score - window
                    span = plain_range(window, window_lows[window], score)
                    if span is not None:
                        lo, hi = span
            when: float | bytes | None = None
            if answer is not None and plain and window in alone:
                # plain_count's verdict on a compacted answer without its call (most entries); else asked.
                when = answer[0]
                if span is None or len(answer) != 3 or type(when) is not float or not lo <= when < hi:
                    when = plain_count(answer, score, window, window_lows[window])
            if when is not None:
                if bucket is None:
                    bucket = at(score, True)
                    assert bucket is not None
                elif member in bucket:
                    continue
                bucket[member] = until  # Seen.first, inline
                ended_append(cast(Ended, (queue, status, member, when, answer)))  # a plain tuple (records.Ended)
                continue
            last_score = None  # what follows may learn a TTL or remember an entry
            fields = (dict(zip(JOB_FIELDS, answer)) if answer is not None else {}) if read_hash else None
            for hint in ttl_hints(fields or {}):
                self._learn(track, queue, hint.status, hint.ttl, found)
            case = Case(status, member, score, window, fields, registry.ttls, found.learned.get((queue, status), ()),
                        track.floor, self.edge, job_prefix)
            for verdict in judge(case):
                if isinstance(verdict, Problem):
                    found.problems.append(verdict)
                elif isinstance(verdict, Learn):
                    self._learn(track, queue, verdict.status, verdict.ttl, found)
                elif isinstance(verdict, Remember):
                    registry.seen[(member, score)] = max(registry.seen.get((member, score), -math.inf), verdict.until)
                elif isinstance(verdict, Count) and (member, score) not in registry.seen:
                    registry.seen[(member, score)] = score - verdict.ttl
                    found.ended.append(Ended(queue, status, member, verdict.ended, answer if verdict.timed else None))
            plain = (queue, status) not in found.learned

    def _learn(self, track: QueueTrack, queue: str, status: str, ttl: int, found: _Found) -> None:
        reg = track.registries[status]
        if ttl <= 0 or nearest(reg.ttls, ttl) is not None:
            return
        if len(reg.ttls) >= MAX_TTLS:
            if not reg.full_logged:
                reg.full_logged = True
                found.problems.append(Problem("too_many_ttls", f"{queue}:{status}",
                                              f"more than {MAX_TTLS} distinct TTLs; TTL {ttl} is not tracked"))
            return
        reg.ttls[ttl] = TtlClass(cursor=track.floor, catching_up=True)
        reg.ttls = dict(sorted(reg.ttls.items()))
        found.learned.setdefault((queue, status), set()).add(ttl)
