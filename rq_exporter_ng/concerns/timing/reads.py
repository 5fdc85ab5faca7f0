"""Job timing's reads, riding in the reader's rounds 2 and 3, and its result.

Round 2: each registry's reads of its plan (registry_reads.py). With RQ's default TTLs an idle
queue costs 2 commands, and a settled registry's one read is packed from a template, 500
registries a group (windows.py; any other registry's reads are a group of their own). The failed
jobs kept forever are the reader's count (``QueueState.failed_forever``).
Round 3: one HMGET per new entry (within the per-scrape caps), with ``exc_info`` for the failed
ones (exception classes take it from the result). As a registry's answers arrive, while Redis
works on the rest, its verdict is made when plain.py can make it, and its jobs are observed in a
draft of the histograms. Only read commands. Nothing here changes the tracker or the histograms
before ``TimingReads.result``, once the whole read has succeeded: a scrape that fails half way
leaves every cursor and count where it was.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, groupby, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, cast

from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Given, Reads
from rq_exporter_ng.concerns.failed_queue import NAME as FAILED_QUEUE
from rq_exporter_ng.concerns.failed_queue import FailedQueue
from rq_exporter_ng.concerns.timing import ranked
from rq_exporter_ng.concerns.timing.histograms import JobTotals
from rq_exporter_ng.concerns.timing.hmget import Compacted, HashTemplate
from rq_exporter_ng.concerns.timing.plain import PlainVerdict
from rq_exporter_ng.concerns.timing.records import (
    NOTHING_NEW,
    NOTHING_NEW_UNCOUNTED,
    Candidate,
    Outcome,
    Plan,
    Probe,
    RegistryPlan,
    RegistryReply,
    Seen,
    Selection,
)
from rq_exporter_ng.concerns.timing.registry_reads import commands, full_reply, idle_reply, one_read
from rq_exporter_ng.concerns.timing.rules import read_compact
from rq_exporter_ng.concerns.timing.windows import RUN, WINDOW_TOP, WindowTemplate
from rq_exporter_ng.snapshot import Problem

if TYPE_CHECKING:
    from rq_exporter_ng.concerns.timing.job_timing import JobTiming

NOTHING_ENDED = Outcome((), (), ())
HASH_GROUP = 1_000  # HMGETs per group of round 3
_REGISTRY = itemgetter(0)  # of a Candidate
FRAMED_RUN = 100  # a finished registry's candidates read from their bytes from this many on (hmget.py)

@dataclass(frozen=True)
class TimingResult:
    outcome: Outcome  # the jobs the tracker found ended this scrape
    # (queue, job id) -> the stored exc_info of each failed job read in a TTL window this scrape
    exc_info: Mapping[tuple[str, bytes], bytes | None]
    totals: JobTotals
    problems: tuple[Problem, ...]


def _released(candidates: Sequence[Candidate]) -> Iterator[Candidate]:
    """The candidates in order, each chunk of them released once iterated past: the caller keeps
    no other reference to ``candidates``. tests/concerns/timing/test_timing_tracker_fast_paths.py checks the
    order is kept."""
    chunks = [candidates[k:k + HASH_GROUP] for k in range(0, len(candidates), HASH_GROUP)]
    chunks.reverse()
    # chain: the candidates handed on in C, not by a generator's step each (15,000 a scrape at 1,000 jobs/s)
    return chain.from_iterable(_drain(chunks))


def hash_ranges(runs: Iterable[tuple[bool, int]]) -> Iterator[tuple[int, int, bool]]:
    """Round 3's groups of HMGETs, ``(start, end, framed)`` in the candidates' order, for registries
    whose candidates come in ``runs`` of ``(finished, how many)``. Finished registries' runs of at
    least FRAMED_RUN are groups of their own, read from their bytes when their replies allow
    (hmget.py); the rest go in groups of HASH_GROUP as they come: at 1,000 queues with a few new
    jobs each, a group a registry would be 2,000 groups of a few HMGETs."""
    mixed = at = 0  # where the candidates not in a framed group start; where this run starts
    framed: int | None = None  # where the current span of framed runs starts
    for finished, n in runs:
        if finished and n >= FRAMED_RUN:
            if framed is None:
                yield from _split(mixed, at, False)
                framed = at
        elif framed is not None:
            yield from _split(framed, at, True)
            framed, mixed = None, at
        at += n
    if framed is not None:
        yield from _split(framed, at, True)
    else:
        yield from _split(mixed, at, False)


def _split(start: int, end: int, framed: bool) -> Iterator[tuple[int, int, bool]]:
    for at in range(start, end, HASH_GROUP):
        yield at, min(at + HASH_GROUP, end), framed


def _spans(runs: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
    """(registry, start, end) of each run of ``(registry, how many)`` candidates."""
    at = 0
    for registry, n in runs:
        yield registry, at, at + n
        at += n


def _drain(chunks: list[Sequence[Candidate]]) -> Iterator[Sequence[Candidate]]:
    while chunks:
        yield chunks.pop()


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
        self.hashes: list[list | None] = []  # HMGET answers, in JOB_FIELDS order, timestamps read
        # (queue, job id) -> exc_info, of the failed jobs' hashes read from a TTL window
        self.exc_info: dict[tuple[str, bytes], bytes | None] = {}
        # The candidates to read, as a list of this scrape's own while verdicts are made ahead: a
        # registry's are let go (None) once judged (75,000 of them, ~6 MB, at 5,000 jobs/s).
        self._read: list[Candidate | None] | None = None
        # Verdicts made as round 3's answers arrive (_judge_ahead): the spans (registry, start, end)
        # of the candidates not judged yet; those judged, and their jobs observed in the draft.
        self._ahead_of: deque[tuple[int, int, int]] = deque()
        self._batch: Batch | None = None  # round 3's, once verdicts can be made ahead: judged once it is all sent
        self.ahead: list[tuple[int, PlainVerdict]] = []
        self.draft = timing.times.draft()
        self.observed = 0

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        # Quiet: these keys are the reader's too, and it reports their errors.
        batch.add_groups(self._groups(queues, now), quiet=True)

    def _groups(self, queues: list[tuple[bytes, str]], now: float) -> Iterator[tuple]:
        # Planned only as the batch is sent, while Redis works on the reads before these.
        self.plan = plan = self.timing.tracker.plan([q for q in queues if q[1] not in self.skip], now)
        self.replies = [None] * len(plan.registries)
        prefixes = self.timing.keys.per_queue
        template, registries = WindowTemplate(prefixes), plan.registries
        start = None  # of a run of registries whose reads are one window's, not yet sent
        for i, rp in enumerate(registries):
            if one_read(rp) and rp.count_to is None:
                if start is None:
                    start = i
                elif i - start == RUN:
                    yield self._run_taker(start, run := registries[start:i]), template.group(run)
                    start = i
                continue
            if start is not None:
                yield self._run_taker(start, run := registries[start:i]), template.group(run)
                start = None
            key = prefixes[rp.status] + rp.raw
            if rp.count_to is not None:  # busy: its window read by counts (ranked.py)
                window = ranked.commands(rp, key, WINDOW_TOP[rp.probe])
                yield self._ranked_taker(i, rp), [*window, *commands(rp, key)[1:]]
            else:
                yield self._taker(i, rp), commands(rp, key)
        if start is not None:
            yield self._run_taker(start, run := registries[start:]), template.group(run)

    def _taker(self, i: int, rp: RegistryPlan):
        def take(replies: list) -> None:
            self.replies[i] = idle_reply(rp, replies) or full_reply(rp, replies, self._seen(rp))
        return take

    def _ranked_taker(self, i: int, rp: RegistryPlan):
        n = ranked.size(rp)  # the window's replies; the sweep's and the kept-forever count's follow

        def take(replies: list) -> None:
            seen = self._seen(rp)
            counted = ranked.read(rp, replies[:n], seen)  # the remembered entries left out already
            if counted is ranked.UNREAD:
                self.replies[i] = None  # not read this scrape: the tracker leaves the registry as it was
                return
            # The read above, with scores (the probe's above the window top among them), as the one
            # read's end; None: an error reply, as the one read's.
            above = replies[n - 1] if isinstance(counted, list) else None
            reply = full_reply(rp, [above, *replies[n:]], seen)
            if counted:  # the counted seconds come first, below the read above (one window: ranked.py)
                ttl = rp.windows[0].ttl
                assert isinstance(counted, list)
                reply = reply._replace(windows={ttl: counted + list(reply.windows.get(ttl, ()))})
            self.replies[i] = reply
        return take

    def _run_taker(self, start: int, run: Sequence[RegistryPlan]):
        """Takes the replies of a run of ``one_read`` registries, one each: what ``_taker`` does,
        with ``idle_reply`` inlined (an empty window read; tests/concerns/timing/test_timing_windows.py
        checks they agree)."""
        def take(replies: list) -> None:
            out, forever_probe = self.replies, Probe.IN_WINDOW_WITH_FOREVER
            for i, rp, answer in zip(range(start, start + len(run)), run, replies):
                if type(answer) is list and not answer:
                    out[i] = NOTHING_NEW if rp.probe is forever_probe else NOTHING_NEW_UNCOUNTED
                else:
                    out[i] = full_reply(rp, [answer], self._seen(rp))
        return take

    def _seen(self, rp: RegistryPlan) -> Seen:
        """The registry's remembered entries; read only: the tracker changes in ``result``."""
        track = self.timing.tracker.queues.get(rp.queue)
        if track is None:
            return Seen()
        registry = track.registries[rp.status]
        return registry.seen if registry.remembers else Seen()

    def third(self, batch: Batch) -> None:
        if self.plan is None:
            return
        # The replies leave out the remembered entries already (``_seen``): not looked up twice.
        self.selection = self.timing.tracker.select(self.plan, self.replies, unseen=True)
        # The windows' entries are the selection's alone (its candidates keep what ``apply`` needs):
        # not held through round 3 and apply, 75,000 of them at 5,000 jobs/s.
        self.replies = [r if r is None or not r.windows else r._replace(windows={}) for r in self.replies]
        to_read = self.selection.to_read
        if to_read:
            self.hashes, self.exc_info = [], {}
            runs = [(r, len(list(run))) for r, run in groupby(to_read, key=_REGISTRY)]
            if to_read is self.selection.candidates:  # every candidate read: verdicts can be made ahead
                self._read = list(to_read)
                to_read = self._read  # type: ignore[assignment]  # (no None in it yet)
                self.selection = Selection((), self.selection.sweep_afforded, self.selection.deferred)
                self._ahead_of = deque(_spans(runs))
                self._batch = batch
            # After every other read of the round: the failed jobs' streams (exception classes) are
            # answered first, and parsed while Redis works on these.
            batch.add_last(lambda: batch.add_groups(self._hash_groups(to_read, runs), quiet=True))

    def _hash_groups(self, to_read: Sequence[Candidate], runs: list[tuple[int, int]]) -> Iterator[tuple]:
        """The HMGETs in groups of HASH_GROUP, packed as they are sent (hmget.py: no command tuples
        built or kept), and each group's answers read (and their timestamps with them) as they
        arrive, so neither 75,000 packed commands nor 75,000 raw answers are ever held at once."""
        assert self.plan is not None
        registries = self.plan.registries
        template = HashTemplate(self.timing.keys.per_queue["job"], self.timing.fields, registries)
        for start, end, framed in hash_ranges((registries[r].status == "finished", n) for r, n in runs):
            yield self._take_hashes, template.group(to_read[start:end], framed)

    def _take_hashes(self, replies: list) -> None:
        """A group's answers as they arrive: a failed job's ``exc_info`` set apart, the timestamps
        read, the answers compacted (rules.read_compact); read from their bytes already, as they are."""
        if type(replies) is Compacted:
            self.hashes += replies
        else:
            assert self.plan is not None  # (groups of third's)
            n, at, exc_info = len(self.timing.fields), len(self.hashes), self.exc_info
            read, registries = self._to_read(), self.plan.registries
            for k, r in enumerate(replies):
                if r is not None and len(r) > n:  # (a failed job's: exc_info asked for)
                    c = read[at + k]  # (registry, member, score, window, read_hash); not let go yet
                    if c is not None and c[3] is not None and registries[c[0]].status == "failed":
                        exc_info[registries[c[0]].queue, c[1]] = r[n]
                    del r[n:]
            self.hashes += read_compact(replies)
        if self._ahead_of and self._batch is not None and self._batch.sent:
            self._judge_ahead()

    def _judge_ahead(self) -> None:
        """The registries whose answers are all here judged now, when plain.py can (most), and
        their jobs observed in the scrape's draft of the histograms: while Redis works on the
        rest of round 3, rather than after it (~20 ms of CPU a scrape at 1,000 jobs/s). Nothing
        is kept before ``result``. The first registry it cannot judge stops it: ``apply`` judges
        that one and all after it in order, as the tracker may learn a TTL there."""
        assert self.plan is not None and self._read is not None
        spans, hashes, to_read = self._ahead_of, self.hashes, self._read
        tracker, times = self.timing.tracker, self.timing.times
        while spans and spans[0][2] <= len(hashes):
            index, start, end = spans.popleft()
            mine = cast(list[Candidate], to_read[start:end])  # not let go: the spans before are
            verdict = tracker.judge_ahead(self.plan, index, mine, hashes[start:end])
            if verdict is None:
                spans.clear()
                return
            to_read[start:end] = repeat(None, end - start)  # the verdict holds what is needed of them
            self.ahead.append((index, verdict))
            times.observe(self.draft, verdict.ended)
            self.observed += len(verdict.ended)

    def _to_read(self) -> Sequence[Candidate | None]:
        if self._read is not None:
            return self._read
        return self.selection.to_read if self.selection is not None else ()

    def failed_in_windows(self) -> list[tuple[str, bytes]]:
        """After ``third``: (queue, job id) of the failed jobs whose hashes are read from a TTL
        window. The probe's and the sweep's finds are old entries (their TTL's window counts them
        on a later scrape, if ever), and an idle registry has none."""
        if self.plan is None or self.selection is None:
            return []
        registries = self.plan.registries
        failed = {i for i, rp in enumerate(registries) if rp.status == "failed"}  # looked up once, not a job
        # (registry, member, score, window, read_hash): some candidates are plain tuples (records.Candidate).
        # Asked before round 3 is sent: none is let go yet.
        read = cast(Sequence[Candidate], self._to_read())
        return [(registries[c[0]].queue, c[1]) for c in read if c[0] in failed and c[3] is not None]

    def result(self, given: Given) -> TimingResult:
        """The tracker moves its cursors and says which jobs ended; they are counted and timed,
        and so are the new jobs of RQ 0.x's failed queue."""
        timing, problems = self.timing, list[Problem]()
        outcome: Outcome = NOTHING_ENDED
        exc_info: Mapping[tuple[str, bytes], bytes | None] = {}
        if self.plan is not None and self.selection is not None:
            exc_info = self.exc_info
            # The candidates go to apply a chunk at a time, each released once judged: not held
            # while apply makes the jobs' records (75,000 candidates, ~6 MB, at 5,000 jobs/s).
            # Those of the registries judged ahead are gone already: apply takes the rest.
            selection = self.selection
            rest: Sequence[Candidate]
            if self._read is not None:
                rest = cast(list[Candidate], self._read[self.observed:])
                self._read = None
            else:
                rest = selection.candidates
                selection = Selection((), selection.sweep_afforded, selection.deferred)
            self.selection = None
            candidates = _released(rest)
            del rest
            # The reader counts each queue's failed jobs kept forever: it reads them apart anyway,
            # as RQ's count of failed jobs leaves the expired ones out.
            failed_forever = {q.name: q.failed_forever for q in given.snapshot.queues}
            outcome = timing.tracker.apply(self.plan, self.replies, selection, self.hashes, failed_forever, candidates,
                                           self.ahead)
            # Judged: not held while the scrape goes on to build and compress its families.
            self.hashes, self.exc_info, self.replies, self.ahead = [], {}, [], []
            problems += outcome.problems
            problems += timing.times.record(outcome, self.draft, self.observed)
        old = given.result(FailedQueue)
        if old is not None and old.legacy:
            timing.forget(FAILED_QUEUE)  # tracked on the scrape that told
            problems += timing.times.record(Outcome(old.ended, (), ()))
        present = {q.name for q in given.snapshot.queues}
        timing.forget_gone(present, given.snapshot.time)
        totals = timing.times.totals({*timing.tracker.queues, *present})
        return TimingResult(outcome, exc_info, totals, tuple(problems))
