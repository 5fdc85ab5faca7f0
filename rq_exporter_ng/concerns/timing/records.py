"""Job timing's records: what the tracker keeps across scrapes, and the immutable values its
phases (tracker.py) and job timing's reads (reads.py) hand each other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import NamedTuple

from rq_exporter_ng.snapshot import Problem

Entry = tuple[bytes, float]  # (member, score)


class Probe(Enum):
    """How this scrape looks for TTLs longer than any known (reads.py turns it into Redis syntax)."""

    ALONE = "alone"  # a read of its own above the longest window, PROBE_CHUNK entries at most
    # Settled (the last probe found nothing): the longest window's read goes on up to +inf,
    # so the probe costs no command; its reply holds only what arrived since.
    IN_WINDOW = "in window"
    # Likewise, up to +inf included: also counts the finished jobs kept forever (score +inf).
    IN_WINDOW_WITH_FOREVER = "in window, with the jobs kept forever"


# --- state kept across scrapes ---------------------------------------------------------------
_NONE: dict[bytes, float] = {}
SWEEP_CHUNK = 20  # registry entries a sweep reads a scrape


class Seen:
    """(member, score) -> until: the entries a window may return again, each remembered until the
    windows have passed an "ended at" second. Held per score, member -> until: at 5,000 jobs/s a
    registry remembers ~60,000 entries (the windows' overlap), and a member in its score's dict
    costs 61 bytes where a (member, score) key of its own cost 123 (the member's bytes aside);
    Redis sends entries sorted by score, so ``unseen`` looks a score up once for all its members.
    tests/concerns/timing/test_timing_seen.py checks it against a dict of (member, score)."""

    __slots__ = ("_by_score",)

    def __init__(self, entries: Iterable[tuple[Entry, float]] = ()) -> None:
        self._by_score: dict[float, dict[bytes, float]] = {}
        for entry, until in entries:
            self[entry] = until

    def __contains__(self, entry: object) -> bool:
        return isinstance(entry, tuple) and entry[0] in self._by_score.get(entry[1], _NONE)

    def get(self, entry: Entry, default: float) -> float:
        return self._by_score.get(entry[1], _NONE).get(entry[0], default)

    def __setitem__(self, entry: Entry, until: float) -> None:
        member, score = entry
        bucket = self._by_score.get(score)
        if bucket is None:
            bucket = self._by_score[score] = {}
        bucket[member] = until

    def first(self, member: bytes, score: float, until: float) -> bool:
        """Remember the entry unless it is: whether it was new (``in`` and a set in one call)."""
        bucket = self._by_score.get(score)
        if bucket is None:
            bucket = self._by_score[score] = {}
        elif member in bucket:
            return False
        bucket[member] = until
        return True

    def at(self, score: float, make: bool = False) -> dict[bytes, float] | None:
        """The members remembered at ``score`` (member -> until), to add to in place as ``first``
        does (the tracker's loop, a score at a time); None when there are none, unless ``make``."""
        bucket = self._by_score.get(score)
        if bucket is None and make:
            bucket = self._by_score[score] = {}
        return bucket

    def add(self, score: float, members: dict[bytes, float]) -> None:
        """``members`` (member -> until) remembered at ``score``: the dict itself kept when the
        score has none yet (plain.py's verdicts make one a score, held until kept: not copied)."""
        bucket = self._by_score.get(score)
        if bucket is None:
            if members:  # (no empty bucket: forget_before reads each one's values)
                self._by_score[score] = members
        else:
            bucket.update(members)

    def unseen(self, entries: Iterable[Entry]) -> list[Entry]:
        """The entries not remembered, in their order."""
        by_score = self._by_score
        if not by_score:
            return list(entries)
        out: list[Entry] = []
        last, bucket = None, _NONE
        for entry in entries:
            if entry[1] != last:
                last = entry[1]
                bucket = by_score.get(last, _NONE)
            if entry[0] not in bucket:
                out.append(entry)
        return out

    def forget_before(self, keep: float) -> None:
        """Forget the entries remembered until before ``keep``."""
        by_score = self._by_score
        for score, bucket in list(by_score.items()):
            if max(bucket.values()) < keep:
                del by_score[score]
            elif min(bucket.values()) < keep:
                by_score[score] = {member: until for member, until in bucket.items() if until >= keep}

    def items(self) -> Iterator[tuple[Entry, float]]:
        for score, bucket in self._by_score.items():
            for member, until in bucket.items():
                yield (member, score), until

    def __len__(self) -> int:
        return sum(map(len, self._by_score.values()))

    def __bool__(self) -> bool:
        return bool(self._by_score)


# Slotted: the state of every queue and registry stays between scrapes (10,000 queues: 20,000
# registries), and an instance without a __dict__ is a third of the size.
@dataclass(slots=True)
class TtlClass:
    cursor: int  # counted up to this "ended at" second (score - ttl); the next window starts here - slack
    # Learned after the floor: its window reads the backlog since the floor. Past the per-scrape
    # cap that backlog is left for the next scrape rather than counted by score, because these
    # windows also hold older jobs of other TTLs that were counted long ago.
    catching_up: bool = False


class RegistryTrack:
    """A registry's TTLs and what its reads remember. Most registries have one TTL (RQ's default)
    and it is kept as ``one_ttl`` (TTL, class) rather than a dict: a dict of one item is ~200 bytes,
    4 MB of 20,000 registries. ``ttls`` makes the dict when asked (a registry with entries to
    judge, a TTL to learn); ``compact()`` goes back to the pair once the scrape is done with it."""

    __slots__ = ("_ttls", "forever", "full_logged", "one_class", "one_ttl", "remembered", "scored", "settled",
                 "sweep_from", "sweep_skip")

    def __init__(self, ttls: Mapping[int, TtlClass] | None = None, forever: int | None = None) -> None:
        self._ttls: dict[int, TtlClass] | None = dict(ttls or {})
        self.one_ttl: int | None = None  # with one_class: the only TTL, while ``_ttls`` is None
        self.one_class: TtlClass | None = None
        self.compact()
        self.remembered: Seen | None = None  # ``seen``, None until first used
        self.sweep_from: float | None = None
        self.sweep_skip = 0
        self.forever = forever
        self.settled = False  # the last probe found no finite entry above the longest window
        self.full_logged = False
        # Scrapes left that read its window's scores as they are (WITHSCORES), not by counts
        # (ranked.py): set when a read by counts did not add up (a score not a whole second).
        self.scored = 0

    def advance_sweep(self, sweep: tuple[float, int] | None, entries: Sequence[Entry], afforded: int | None) -> None:
        """The sweep goes on past this scrape's chunk (``sweep``: where it read from, and how many
        entries of that score it skipped), or as far as the discovery budget ``afforded``."""
        if sweep is None:
            return
        cut = afforded is not None
        if cut:
            entries = entries[:afforded]
            if not entries:
                return  # nothing afforded: same place next time
        if len(entries) < SWEEP_CHUNK and not cut:
            self.sweep_from, self.sweep_skip = None, 0  # reached the top: start again at the bottom
            return
        last = entries[-1][1]
        same = sum(1 for _, score in entries if score == last)
        start, skip = sweep
        self.sweep_from = last
        self.sweep_skip = same + (skip if last == start else 0)

    @property
    def ttls(self) -> dict[int, TtlClass]:
        """TTL -> its class, in increasing TTL order."""
        ttls = self._ttls
        if ttls is None:
            assert self.one_ttl is not None and self.one_class is not None
            ttls = self._ttls = {self.one_ttl: self.one_class}
            self.one_ttl = self.one_class = None
        return ttls

    @ttls.setter
    def ttls(self, ttls: dict[int, TtlClass]) -> None:
        self._ttls, self.one_ttl, self.one_class = ttls, None, None

    @property
    def ttls_read(self) -> Iterable[int]:
        """The TTLs, read without making the dict ``ttls`` makes (verdicts made ahead: plain.py)."""
        if self._ttls is None:
            assert self.one_ttl is not None
            return (self.one_ttl,)
        return self._ttls.keys()

    def compact(self) -> None:
        """A dict of one TTL back to the pair (no one holds the dict between scrapes)."""
        ttls = self._ttls
        if ttls is not None and len(ttls) == 1:
            for self.one_ttl, self.one_class in ttls.items():
                self._ttls = None

    @property
    def seen(self) -> Seen:
        """(member, score) -> score - ttl of the window that saw it; dropped once no window can
        return it. Made on first use: most registries never remember an entry, and an empty
        ``Seen`` is 112 bytes of each of them."""
        seen = self.remembered
        if seen is None:
            seen = self.remembered = Seen()
        return seen

    @property
    def remembers(self) -> bool:
        """Whether ``seen`` holds any entry (without making it)."""
        return self.remembered is not None and bool(self.remembered)


@dataclass(slots=True)
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
    # The one window read by counts of its whole seconds up to this score (ranked.py); None: with scores
    count_to: int | None = None


class RegistryReply(NamedTuple):
    windows: Mapping[int, Sequence[Entry]]  # TTL -> entries, only windows that returned some
    probe: Sequence[Entry] = ()  # at most PROBE_CHUNK
    probe_found: bool | None = None  # were there entries above probe_above? None: no answer
    sweep: Sequence[Entry] = ()
    forever: int | None = None  # entries kept forever; None: no answer


# What a settled registry with nothing new answers, most registries on most scrapes (reads.py's
# ``idle_reply`` and its window groups): one value shared by all of them.
NOTHING_NEW = RegistryReply({}, (), False, (), 0)  # nothing in the window, above it, or kept forever
NOTHING_NEW_UNCOUNTED = RegistryReply({}, (), False, (), None)  # likewise, the kept-forever not read here


@dataclass(frozen=True)
class Plan:
    now: int
    registries: tuple[RegistryPlan, ...]
    new_queues: Mapping[str, QueueTrack]  # tracks of queues first seen now, kept by apply


class Candidate(NamedTuple):
    """Also made as a plain tuple of these fields (``Tracker.select``'s lone-window path: a
    NamedTuple's instance costs ``tuple.__new__``, 4x a plain tuple, 15,000 a scrape at 1,000
    jobs/s), so its readers index it rather than name its fields."""

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

    @cached_property  # asked in each of round 3, its exceptions and the result
    def to_read(self) -> Sequence[Candidate]:
        read = [c for c in self.candidates if c[4]]  # read_hash (some are plain tuples: Candidate)
        # Under the cap, all of them: the candidates themselves, not a second list held to the end.
        return self.candidates if len(read) == len(self.candidates) else read


class Ended(NamedTuple):
    """A job counted this scrape; ``fields``: its hash's values in JOB_FIELDS order when it is to be
    timed, else None. Most are plain tuples in this order, read by index: the tracker's common
    verdicts make them by the thousand (a named tuple's ``__new__`` is a Python call)."""

    queue: str
    status: str
    member: bytes
    ended: float | None = None
    fields: Sequence[bytes | float | None] | None = None  # timestamps as floats where read (stamps.py)


@dataclass(frozen=True)
class Outcome:
    ended: tuple[Ended, ...]
    kept_forever: tuple[tuple[str, str, int], ...]  # (queue, status, how many more than last scrape)
    problems: tuple[Problem, ...]
    # The failed jobs of ``ended``, in order: what exception classes and retries look at (5 % of the
    # jobs, say). The tracker hands them over as it finds them, a registry at a time; None: found here.
    failed: tuple[Ended, ...] | None = None

    def __post_init__(self) -> None:
        if self.failed is None:
            object.__setattr__(self, "failed", tuple(job for job in self.ended if job[1] == "failed"))
