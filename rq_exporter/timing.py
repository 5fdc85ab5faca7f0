"""Job timing: which finished and failed registry entries are new since the last scrape, and the
histograms and counters they feed. Pure logic; the Redis reads are in timing_reads.py.

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
by score: their number is counted (ZCOUNT) and its growth is added to the counters, untimed.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from rq_exporter import jobfunc, parse
from rq_exporter.metrics import histogram_table, table
from rq_exporter.snapshot import Problem

REGISTRIES = ("finished", "failed")  # the registry key kind is also the status label
RQ_DEFAULT_TTL = {"finished": 500, "failed": 31_536_000}
TTL_FIELD = {"finished": b"result_ttl", "failed": b"failure_ttl"}
# RQ stores a job a moment after ended_at, so score - ended_at can exceed the TTL by a second
# or two (more when a success callback runs in between: that becomes a TTL of its own).
TOLERANCE = 2
MAX_TTLS = 64  # per queue and registry; more distinct TTLs are not learned (logged once)
PROBE_CHUNK = 20
SWEEP_CHUNK = 20
JOB_FIELDS = (b"ended_at", b"started_at", b"enqueued_at", b"result_ttl", b"failure_ttl", b"data")

# 10 ms to 4 h in 13 buckets: 3 histograms x 16 series per queue, so thousands of queues stay affordable.
DEFAULT_BUCKETS = (0.01, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)


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
    seen: dict[tuple[bytes, float], float] = field(default_factory=dict)
    sweep_from: float | None = None
    sweep_skip: int = 0
    forever: int | None = None
    # The last probe found no finite entry above the longest TTL's window: the next one can ride
    # in that window's read, whose reply then holds only what arrived since (see plan()).
    settled: bool = False
    full_logged: bool = False


@dataclass
class QueueTrack:
    floor: int  # jobs that ended before this second are history, never counted
    registries: dict[str, RegistryTrack] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGISTRIES, 0))
    not_timed: int = 0


class Histogram:
    __slots__ = ("counts", "sum", "_cumulative")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0
        self._cumulative: list[int] | None = None  # rebuilt only after an observation

    def observe(self, bounds: tuple[float, ...], value: float) -> None:
        self.counts[bisect_left(bounds, value)] += 1
        self.sum += value
        self._cumulative = None

    @property
    def cumulative(self) -> list[int]:
        """The count of each bucket as exposed: observations up to its bound."""
        if self._cumulative is None:
            self._cumulative = list(accumulate(self.counts))
        return self._cumulative


# --- one scrape's reads ----------------------------------------------------------------------
Entry = tuple[bytes, float]


@dataclass(slots=True, eq=False)
class RegistryRead:
    """What to read from one registry this scrape, and (after round 2) what came back."""

    queue: str
    raw: bytes
    status: str
    windows: list[tuple[int, int, int]]  # (ttl, lowest score, highest score), inclusive; longest TTL last
    probe_above: int  # finite scores above this (the last window's top): TTLs longer than any known
    # How the probe is read: None, on its own (LIMIT PROBE_CHUNK); "(inf": in the last window's read,
    # up to +inf excluded; "+inf": likewise, and that read also counts the entries kept forever.
    probe_in_window: str | None = None
    sweep: tuple[float, int] | None = None  # (from score, entries at that score to skip)
    # What came back. Most registries get nothing on most scrapes: nothing is allocated for them.
    window_entries: dict[int, list[Entry]] | None = None  # only windows with entries
    probe_entries: Sequence[Entry] = ()  # at most PROBE_CHUNK
    probe_found: bool | None = None  # were there entries above probe_above? None: no answer
    sweep_entries: Sequence[Entry] = ()
    forever: int | None = None
    sweep_cut: bool = False  # the discovery budget ran out inside this sweep
    deferred: dict[int, float] | None = None  # catching-up TTL -> first entry left


@dataclass
class Candidate:
    read: RegistryRead
    member: bytes
    score: float
    window: int | None  # the TTL window that returned it; None: found by the probe or the sweep
    read_hash: bool = True
    fields: dict[bytes, bytes | None] | None = None


@dataclass
class Scan:
    now: int
    reads: list[RegistryRead]
    new_queues: dict[str, QueueTrack]
    candidates: list[Candidate] = field(default_factory=list)


# --- the tracker ------------------------------------------------------------------------------
class Timing:
    def __init__(
        self,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        max_jobs_per_scrape: int = 10_000,
        discovery_per_scrape: int = 100,
        slack: int = 10,
        extra_ttls: Iterable[int] = (),
        func_label: bool = False,
        func_limit: int = 100,
        key_prefix: str = "rq",
    ) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self.les = tuple(floatToGoString(b) for b in self.bounds) + ("+Inf",)
        self.max_jobs = max_jobs_per_scrape
        self.discovery = discovery_per_scrape
        self.slack = slack
        self.extra_ttls = tuple(t for t in extra_ttls if t > 0)
        self.func_label = func_label
        self.func_limit = func_limit
        self.key_prefix = key_prefix
        # ``data`` holds the call's arguments too: read it only when the func label needs it.
        self.fields = JOB_FIELDS if func_label else JOB_FIELDS[:-1]
        self.queues: dict[str, QueueTrack] = {}
        self.durations: dict[tuple, Histogram] = {}
        self.waits: dict[tuple, Histogram] = {}
        self.funcs: set[str] = set()
        self.last_now: int | None = None
        self._sweep_turn = 0

    # -- round 2: what to read ----------------------------------------------------------------
    def plan(self, queues: Iterable[tuple[bytes, str]], now: float) -> Scan:
        n = int(now)
        scan = Scan(now=n, reads=[], new_queues={})
        edge = self.slack + TOLERANCE
        for raw, name in queues:
            track = self.queues.get(name)
            if track is None:
                # A queue first seen now may have had jobs since the previous scrape (it did not
                # exist then); on the very first scrape, history is not counted: floor = now.
                track = self._new_queue(self.last_now if self.last_now is not None else n)
                if self.last_now is not None:
                    for reg in track.registries.values():
                        reg.forever = 0  # likewise its jobs kept forever
                scan.new_queues[name] = track
            floor = track.floor
            for status in REGISTRIES:
                reg = track.registries[status]
                windows = [(t, max(c.cursor - edge, floor) + t, n + edge + t) for t, c in reg.ttls.items()]
                read = RegistryRead(name, raw, status, windows, windows[-1][2] if windows else n)
                if reg.settled and windows:
                    # Above the longest window there was nothing last scrape, so reading on to +inf
                    # costs only what arrived since: one command instead of two. Kept-forever
                    # entries (finished: score +inf) ride along while there are none to re-read.
                    read.probe_in_window = "+inf" if status == "finished" and reg.forever == 0 else "(inf"
                scan.reads.append(read)
        # The sweep is a backstop: a few registries per scrape, in turn.
        sweeps = scan.reads
        if sweeps and self.discovery > 0:
            turns = max(1, self.discovery // SWEEP_CHUNK)
            start = self._sweep_turn % len(sweeps)
            for i in range(min(turns, len(sweeps))):
                read = sweeps[(start + i) % len(sweeps)]
                reg = self._track(scan, read.queue).registries[read.status]
                lowest = n + 1
                if reg.sweep_from is None or reg.sweep_from < lowest:
                    read.sweep = (lowest, 0)
                else:
                    read.sweep = (reg.sweep_from, reg.sweep_skip)
            self._sweep_turn = (start + min(turns, len(sweeps))) % len(sweeps)
        return scan

    def _new_queue(self, floor: int) -> QueueTrack:
        track = QueueTrack(floor=floor)
        for status in REGISTRIES:
            reg = RegistryTrack()
            for t in sorted({RQ_DEFAULT_TTL[status], *self.extra_ttls}):
                reg.ttls[t] = TtlClass(cursor=floor)
            track.registries[status] = reg
        return track

    def _track(self, scan: Scan, queue: str) -> QueueTrack:
        return self.queues.get(queue) or scan.new_queues[queue]

    # -- round 3: which job hashes to read --------------------------------------------------------
    def select(self, scan: Scan) -> list[Candidate]:
        """New entries to read, within the per-scrape caps; the rest are counted by score alone."""
        timing_left = self.max_jobs
        discovery_left = self.discovery
        edge = self.slack + TOLERANCE
        for read in scan.reads:
            if not (read.window_entries or read.probe_entries or read.sweep_entries):
                continue  # most registries, most scrapes
            track = self._track(scan, read.queue)
            reg = track.registries[read.status]
            taken: set[Entry] = set()
            found = read.window_entries or {}
            # Jobs that just ended first; a backlog of a TTL learned late gets what is left.
            for t, _, _ in sorted(read.windows, key=lambda w: (reg.ttls[w[0]].catching_up, w[0])):
                for entry in found.get(t, ()):
                    if entry in reg.seen or entry in taken:
                        continue
                    taken.add(entry)
                    use = timing_left > 0
                    timing_left -= use
                    if not use and reg.ttls[t].catching_up and self.max_jobs > 0:
                        if read.deferred is None:
                            read.deferred = {}
                        read.deferred.setdefault(t, entry[1] - t)  # entries come by score: the lowest
                        continue
                    scan.candidates.append(Candidate(read, entry[0], entry[1], t, read_hash=use))
            # (windows never reach below the floor: lower = max(cursor - edge, floor))
            lo_known = [(t, track.floor + t, scan.now + edge + t) for t in reg.ttls]
            for i, entry in enumerate([*read.probe_entries, *read.sweep_entries]):
                if discovery_left <= 0:
                    # The sweep goes on from the first entry it could not afford.
                    read.sweep_entries = read.sweep_entries[: max(0, i - len(read.probe_entries))]
                    read.sweep_cut = True
                    break
                if entry in reg.seen or entry in taken:
                    continue
                # Inside a known TTL's range since the floor: its window reads it (or did).
                if any(lo <= entry[1] <= hi for _, lo, hi in lo_known):
                    continue
                taken.add(entry)
                discovery_left -= 1
                scan.candidates.append(Candidate(read, entry[0], entry[1], None))
        return [c for c in scan.candidates if c.read_hash]

    # -- after a successful read: update the state ------------------------------------------------
    def apply(self, scan: Scan) -> list[Problem]:
        problems: list[Problem] = []
        self.queues.update(scan.new_queues)
        n = scan.now
        edge = self.slack + TOLERANCE
        learned: set[tuple[str, str, int]] = set()

        for c in scan.candidates:
            track = self.queues[c.read.queue]
            reg = track.registries[c.read.status]
            if not c.read_hash:
                # Past the per-scrape cap: counted as a job of the window's TTL, not timed.
                self._count(track, reg, c, c.window, None, problems)
                continue
            fields = c.fields or {}
            if all(fields.get(f) is None for f in JOB_FIELDS):
                if c.window is not None:
                    problems.append(Problem("missing_job", self._job_key(c), "registry entry without a job hash"))
                    reg.seen[(c.member, c.score)] = c.score - c.window  # read it once
                continue
            for status in REGISTRIES:  # a job's own TTLs teach both registries of its queue
                hint = _int_or_none(fields.get(TTL_FIELD[status]))
                if hint is not None and hint > 0:
                    self._learn(track, status, hint, learned, problems, c)
            try:
                ended = parse.timestamp(fields.get(b"ended_at"))
            except ValueError as error:
                ended = None
                problems.append(Problem("bad_timestamp", self._job_key(c), str(error)[:200]))
            if ended is None:
                # No end time (a job RQ moved to failed after its worker died): the window's
                # TTL is the best guess, and there is nothing to time.
                if c.window is not None:
                    self._count(track, reg, c, c.window, None, problems)
                continue
            measured = int(c.score - math.floor(ended))
            ttl = _nearest(reg.ttls, measured)
            if ttl is None:
                self._learn(track, c.read.status, measured, learned, problems, c)
                continue  # counted from the floor by its own window next scrape
            if c.window is None:
                continue  # discovery: known TTL, its window counts it
            if (c.read.queue, c.read.status, ttl) in learned:
                continue
            # This scrape's window of that TTL started here (cursors move only after this loop).
            low = max(reg.ttls[ttl].cursor - edge, track.floor)
            if c.score - ttl < low:
                # An older entry of a longer TTL passing through this window: remember until it
                # leaves, so it is read once.
                reg.seen[(c.member, c.score)] = max(reg.seen.get((c.member, c.score), -math.inf), c.score - c.window)
                continue
            self._count(track, reg, c, ttl, (ended, fields), problems)

        for read in scan.reads:
            track = self.queues[read.queue]
            reg = track.registries[read.status]
            # (a window's TTL was known before this scrape, so it is never one learned in it)
            for t, _, _ in read.windows:
                ttl = reg.ttls[t]
                if read.deferred and t in read.deferred:
                    ttl.cursor = max(ttl.cursor, int(read.deferred[t]))
                elif ttl.cursor < n or ttl.catching_up:
                    ttl.cursor, ttl.catching_up = max(ttl.cursor, n), False
            if reg.seen:
                # Keep what a window may return again: a catching-up window starts further back.
                keep = min([n, *(c.cursor for c in reg.ttls.values() if c.catching_up)]) - edge
                reg.seen = {k: v for k, v in reg.seen.items() if v >= keep}
            self._advance_sweep(reg, read)
            if read.probe_found is not None:
                reg.settled = not read.probe_found
            if read.forever is not None:
                if reg.forever is not None and read.forever > reg.forever:
                    grown = read.forever - reg.forever
                    track.counts[read.status] += grown
                    track.not_timed += grown
                reg.forever = read.forever
        self.last_now = n
        return problems

    def _count(self, track: QueueTrack, reg: RegistryTrack, c: Candidate, ttl: int | None,
               timed: tuple[float, dict] | None, problems: list[Problem]) -> None:
        key = (c.member, c.score)
        if key in reg.seen:
            return
        reg.seen[key] = c.score - (ttl if ttl is not None else 0)
        status = c.read.status
        track.counts[status] += 1
        if timed is None:
            track.not_timed += 1
            return
        ended, fields = timed
        try:
            started = parse.timestamp(fields.get(b"started_at"))
            enqueued = parse.timestamp(fields.get(b"enqueued_at"))
        except ValueError as error:
            problems.append(Problem("bad_timestamp", self._job_key(c), str(error)[:200]))
            track.not_timed += 1
            return
        if started is None:
            track.not_timed += 1
            return
        func = self._func(fields.get(b"data")) if self.func_label else None
        self._hist(self.durations, (c.read.queue, status, func)).observe(self.bounds, max(0.0, ended - started))
        if enqueued is not None:
            self._hist(self.waits, (c.read.queue, func)).observe(self.bounds, max(0.0, started - enqueued))

    def _learn(self, track: QueueTrack, status: str, ttl: int, learned: set, problems: list[Problem],
               c: Candidate) -> None:
        reg = track.registries[status]
        if ttl <= 0 or _nearest(reg.ttls, ttl) is not None:
            return
        if len(reg.ttls) >= MAX_TTLS:
            if not reg.full_logged:
                reg.full_logged = True
                problems.append(Problem("too_many_ttls", f"{c.read.queue}:{status}",
                                        f"more than {MAX_TTLS} distinct TTLs; TTL {ttl} is not tracked"))
            return
        reg.ttls[ttl] = TtlClass(cursor=track.floor, catching_up=True)
        reg.ttls = dict(sorted(reg.ttls.items()))
        learned.add((c.read.queue, status, ttl))

    def _advance_sweep(self, reg: RegistryTrack, read: RegistryRead) -> None:
        if read.sweep is None:
            return
        entries = read.sweep_entries
        if not entries and read.sweep_cut:
            return  # nothing afforded: same place next time
        if len(entries) < SWEEP_CHUNK and not read.sweep_cut:
            reg.sweep_from, reg.sweep_skip = None, 0  # reached the top: start again at the bottom
            return
        last = entries[-1][1]
        same = sum(1 for _, score in entries if score == last)
        start, skip = read.sweep
        reg.sweep_from = last
        reg.sweep_skip = same + (skip if last == start else 0)

    def _func(self, data: bytes | None) -> str:
        name = jobfunc.function_name(data) or "unknown"
        if name in self.funcs:
            return name
        if len(self.funcs) < self.func_limit:
            self.funcs.add(name)
            return name
        return "other"

    def _hist(self, table: dict, key: tuple) -> Histogram:
        hist = table.get(key)
        if hist is None:
            hist = table[key] = Histogram(len(self.bounds) + 1)
        return hist

    def _job_key(self, c: Candidate) -> str:
        return f"{self.key_prefix}:job:" + parse.text(c.member)

    # -- metric families ----------------------------------------------------------------------
    def families(self, queues: Iterable[str] = ()) -> Iterator[Metric]:
        """Every known queue has its counters at 0; a histogram series appears with its first job.

        Zero histograms would be 48 samples per idle queue (most of a 1,000-queue scrape) that
        say nothing the counters do not: rq_jobs_finished_total is 0 there.
        """
        names = sorted(set(self.queues) | set(queues))
        extra = ("func",) if self.func_label else ()
        funcless = slice(None, None if self.func_label else -1)  # the func key part, without the label
        duration = histogram_table("rq_job_duration_seconds", extra, self.les, [
            (key[funcless], hist.cumulative, hist.sum) for key, hist in sorted(self.durations.items(), key=_sort_key)])
        wait = histogram_table("rq_job_wait_seconds", extra, self.les, [
            (key[funcless], hist.cumulative, hist.sum) for key, hist in sorted(self.waits.items(), key=_sort_key)])
        zero = QueueTrack(floor=0)
        tracks = [((name,), self.queues.get(name) or zero) for name in names]
        counters = [
            table("rq_jobs_finished_total", [(queue, track.counts["finished"]) for queue, track in tracks]),
            table("rq_jobs_failed_total", [(queue, track.counts["failed"]) for queue, track in tracks]),
            table("rq_exporter_jobs_not_timed_total", [(queue, track.not_timed) for queue, track in tracks]),
        ]
        yield from (duration, wait, *counters)


def _nearest(ttls: dict[int, TtlClass], measured: int) -> int | None:
    best = None
    for t in ttls:
        gap = abs(t - measured)
        if gap <= TOLERANCE and (best is None or gap < abs(best - measured) or (gap == abs(best - measured) and t < best)):
            best = t
    return best


def _int_or_none(raw: bytes | None) -> int | None:
    try:
        return int(raw) if raw not in (None, b"") else None
    except ValueError:
        return None


def _sort_key(item: tuple) -> tuple:
    return tuple("" if part is None else part for part in item[0])


def parse_buckets(text: str) -> tuple[float, ...]:
    """'0.1,1,10' -> (0.1, 1.0, 10.0); raises ValueError unless positive, finite and increasing."""
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values:
        raise ValueError("at least one bucket bound is needed")
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError("bucket bounds must be positive numbers")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError("bucket bounds must increase")
    return values


def parse_ttls(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if any(v <= 0 for v in values):
        raise ValueError("TTLs are positive whole seconds")
    return values
