"""What the tracker does with one new registry entry, once its job hash is read: the verdicts.

Each rule is a function that either decides (returns verdicts) or passes (returns None) to the
next, in the order ``judge`` tries them; tests/concerns/timing/test_timing_rules.py takes them one by one. Pure: the
tracker (tracker.py) applies the verdicts to its state.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rq_exporter_ng import parse
from rq_exporter_ng.concerns.timing.stamps import read_all, read_stamps, stamp
from rq_exporter_ng.snapshot import Problem

# The job hash fields job timing reads; ``data`` (the call, with its arguments) only for the func label.
JOB_FIELDS = (b"ended_at", b"started_at", b"enqueued_at", b"result_ttl", b"failure_ttl", b"data")
# Where the timestamps are: read as their answers arrive (stamps.read_stamps), kept as floats.
STAMP_FIELDS = tuple(JOB_FIELDS.index(f) for f in (b"ended_at", b"started_at", b"enqueued_at"))
TTL_FIELD = {"finished": b"result_ttl", "failed": b"failure_ttl"}
TOLERANCE = 2  # seconds by which score - ended_at may exceed the TTL (RQ stores a job after it ended)

Fields = Mapping[bytes, bytes | float | None]  # a timestamp read already is its float (stamps.py)
# A job hash's values in JOB_FIELDS order, likewise; unset fields at its end may be left out (``compact``).
Answer = Sequence[bytes | float | None]
_floor = math.floor


@dataclass(frozen=True, slots=True)
class Count:
    """Count the job once, as a job of ``ttl``; time it when ``timed`` (it ended at ``ended``)."""

    ttl: int
    timed: bool
    ended: float | None = None


@dataclass(frozen=True, slots=True)
class Learn:
    """``ttl`` is in use in the queue's ``status`` registry: read its window from the floor on."""

    status: str
    ttl: int


@dataclass(frozen=True, slots=True)
class Remember:
    """Not this window's job: remember the entry until windows have passed ``until`` ("ended at" s)."""

    until: float


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to do: another window counts it, or did."""


Verdict = Count | Learn | Remember | Skip | Problem


class HasCursor(Protocol):
    cursor: int  # the TTL's window of this scrape starts at this "ended at" second, less the edge


@dataclass(frozen=True, slots=True)
class Case:
    """What the rules judge: one candidate registry entry, and what the tracker knows of its
    registry at this point of the scrape."""

    status: str
    member: bytes
    score: float
    window: int | None  # the TTL window that returned it; None: the probe or the sweep found it
    fields: Fields | None  # None: past the per-scrape cap, not read
    ttls: Mapping[int, HasCursor]  # the registry's known TTLs
    learned: Container[int]  # TTLs of this registry learned earlier in this scrape
    floor: int  # the queue's floor: no window reads below it
    edge: int  # seconds each window reaches back before its cursor
    job_prefix: bytes  # "rq:job:", for the problems' keys

    @property
    def job_key(self) -> str:
        return parse.text(self.job_prefix + self.member)

    def window_low(self, ttl: int) -> int:
        """The lowest "ended at" second this scrape's window of ``ttl`` reads."""
        return max(self.ttls[ttl].cursor - self.edge, self.floor)


def nearest(ttls: Mapping[int, object], measured: int) -> int | None:
    """The known TTL within TOLERANCE of ``measured`` (the closest; the shorter on a tie)."""
    best = None
    for t in ttls:
        gap = abs(t - measured)
        if gap <= TOLERANCE and (best is None or gap < abs(best - measured)
                                 or (gap == abs(best - measured) and t < best)):
            best = t
    return best


def ttl_hints(fields: Fields) -> list[Learn]:
    """A job's own result_ttl / failure_ttl teach the TTLs of both registries of its queue."""
    hints = []
    for status, name in TTL_FIELD.items():
        raw = fields.get(name)
        try:
            ttl = int(raw) if raw else None
        except ValueError:
            ttl = None
        if ttl is not None and ttl > 0:
            hints.append(Learn(status, ttl))
    return hints


def past_the_cap(case: Case) -> list[Verdict] | None:
    """Not read: counted as a job of the window's TTL, untimed."""
    if case.fields is None and case.window is not None:
        return [Count(case.window, timed=False)]
    return None


def no_hash(case: Case) -> list[Verdict] | None:
    """An entry whose job hash is gone: a window reports it once; discovery has nothing to learn."""
    if case.fields is not None and all(case.fields.get(f) is None for f in JOB_FIELDS):
        if case.window is None:
            return [Skip()]
        return [Problem("missing_job", case.job_key, "registry entry without a job hash"),
                Remember(case.score - case.window)]
    return None


def ended_at(case: Case) -> tuple[float | None, list[Verdict]]:
    try:
        return stamp((case.fields or {}).get(b"ended_at")), []
    except ValueError as error:
        return None, [Problem("bad_timestamp", case.job_key, str(error)[:200])]


def no_end_time(case: Case, ended: float | None) -> list[Verdict] | None:
    """No end time (a job RQ moved to failed after its worker died): the window's TTL is the best
    guess, and there is nothing to time."""
    if ended is not None:
        return None
    return [Count(case.window, timed=False)] if case.window is not None else [Skip()]


def unknown_ttl(case: Case, ttl: int | None, measured: int) -> list[Verdict] | None:
    """A TTL nobody knew: learned, and counted from the floor by its own window next scrape."""
    return [Learn(case.status, measured)] if ttl is None else None


def found_by_discovery(case: Case, ttl: int) -> list[Verdict] | None:
    """The probe or the sweep found a job of a known TTL: that TTL's window counts it."""
    return [Skip()] if case.window is None else None


def learned_this_scrape(case: Case, ttl: int) -> list[Verdict] | None:
    """Its TTL was learned this scrape: its window, from the floor, counts it next scrape."""
    return [Skip()] if ttl in case.learned else None


def passing_through(case: Case, ttl: int) -> list[Verdict] | None:
    """An older entry of a longer TTL whose score passes through a shorter TTL's window (its
    window of this scrape started later): remembered until it leaves, so it is read once."""
    if case.score - ttl < case.window_low(ttl):
        assert case.window is not None
        return [Remember(case.score - case.window)]
    return None


def plain_count(answer: Answer, score: float, window: int, window_low: int) -> float | None:
    """The verdict of ``judge`` on most entries, reached without building a Case: a window's job
    whose hash was read, with no TTL fields of its own (nothing to learn), an end time, and a score
    that puts it in that window (the window's TTL within TOLERANCE, no other known TTL near: the
    caller checks that) since the window's start. Returns its end time: judge() would say
    ``[Count(window, timed=True, ended=that)]``. None: ask judge().

    ``answer``: the job hash's values in JOB_FIELDS order. tests/concerns/timing/test_timing_rules.py checks that
    both agree wherever this one decides.
    """
    if len(answer) > 3 and (answer[3] is not None or answer[4] is not None):  # (not left out: compact)
        return None
    ended = answer[0]
    if type(ended) is not float:  # read as it arrived (stamps.read_stamps), mostly
        try:
            ended = stamp(ended)
        except ValueError:
            return None
        if ended is None:
            return None
    if abs(int(score - _floor(ended)) - window) > TOLERANCE or score - window < window_low:
        return None
    return ended


def plain_bounds(window: int, window_low: int) -> tuple[int, int, int] | None:
    """``(lo, hi, start)`` such that ``plain_count`` returns ``ended`` of a compacted answer
    ``(ended, started, enqueued)`` with a float ``ended`` whenever ``lo <= score - floor(ended) < hi``
    and ``score - window >= start``: its TTL check without ``int()`` and ``abs()``, which ``plain_range``
    turns into a span of end times a score (tests/concerns/timing/test_timing_rules.py checks the claim).
    None: a window too short for it (``int()`` truncates towards 0 there); ask ``plain_count``."""
    if window - TOLERANCE < 1:
        return None
    return window - TOLERANCE, window + TOLERANCE + 1, window_low


def plain_range(window: int, window_low: int, score: float) -> tuple[int, int] | None:
    """``(a, c)`` such that ``plain_count`` returns ``ended`` of a compacted answer with a float
    ``ended`` whenever ``a <= ended < c``: ``plain_bounds``' check made once for all the entries of
    one score (a second's jobs share it) rather than a ``floor`` a job. Exact: Python compares a float
    and an int exactly, and above ``hi`` the score less a whole second is a float without rounding.
    None: ask ``plain_bounds``' check (tests/concerns/timing/test_timing_rules.py checks the claim)."""
    bounds = plain_bounds(window, window_low)
    if bounds is None or not (math.isfinite(score) and score > bounds[1] and score - window >= window_low):
        return None
    whole = _floor(score)
    # lo <= score - floor(ended) < hi  <=>  floor(score) - hi < floor(ended) <= floor(score) - lo
    return whole - bounds[1] + 1, whole - bounds[0] + 1


_TTLS_AT = tuple(JOB_FIELDS.index(f) for f in TTL_FIELD.values())
assert STAMP_FIELDS == (0, 1, 2) and _TTLS_AT == (3, 4)  # compact() below relies on it
_WITHOUT_DATA = len(JOB_FIELDS) - 1  # the fields read without the func label (job_timing.py)


def compact(answers: list) -> list:
    """Each answer (timestamps read, ``exc_info`` set apart) read without ``data`` and with no TTL
    field of its own, most of them, as the tuple of its three timestamps: the unset fields at its
    end left out (they read as unset: ``plain_count``, ``judge``'s dict). A scrape holds every
    answer until its end: a list of five from hiredis is ~170 bytes, the tuple 64 (~7 MB at
    5,000 jobs/s). tests/concerns/timing/test_timing_rules.py checks both say the same."""
    return [a if a is None or len(a) != _WITHOUT_DATA or a[3] is not None or a[4] is not None
            else (a[0], a[1], a[2]) for a in answers]


def read_compact(answers: list) -> list:
    """``compact`` of the answers once ``read_stamps`` has read them (as reads.py keeps them), with
    the timestamps of the whole group read at once (``stamps.read_all``) where they are all in RQ's
    exact form. tests/concerns/timing/test_timing_rules.py checks both ways give the same."""
    floats = read_all(answers, STAMP_FIELDS)
    if floats is None:
        read_stamps(answers, STAMP_FIELDS)
        return compact(answers)
    it = iter(floats)
    return [(x, y, z) if len(a) == _WITHOUT_DATA and a[3] is None and a[4] is None else _put(a, x, y, z)
            for a, x, y, z in zip(answers, it, it, it)]


def _put(answer: list, ended: float, started: float, enqueued: float) -> list:
    answer[0:3] = ended, started, enqueued
    return answer


def judge(case: Case) -> list[Verdict]:
    """The verdicts on one entry (after its TTL hints, which the tracker learns first)."""
    for rule in (past_the_cap, no_hash):
        verdicts = rule(case)
        if verdicts is not None:
            return verdicts
    ended, problems = ended_at(case)
    decided = no_end_time(case, ended)
    if decided is not None:
        return problems + decided
    assert ended is not None
    measured = int(case.score - math.floor(ended))
    ttl = nearest(case.ttls, measured)
    decided = unknown_ttl(case, ttl, measured)
    if decided is not None:
        return problems + decided
    assert ttl is not None
    for known_ttl_rule in (found_by_discovery, learned_this_scrape, passing_through):
        decided = known_ttl_rule(case, ttl)
        if decided is not None:
            return problems + decided
    return problems + [Count(ttl, timed=True, ended=ended)]
