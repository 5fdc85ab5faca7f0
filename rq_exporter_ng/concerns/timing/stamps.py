"""RQ's timestamps as job timing reads them: three per timed job, tens of thousands a scrape.

``stamp`` is ``parse.timestamp`` (tests/concerns/timing/test_timing_stamps.py checks they agree on
every input), ~0.2 us quicker on RQ's exact form "YYYY-MM-DDTHH:MM:SS.ffffffZ": the jobs of one
scrape ended within a few hundred seconds, so each second's epoch is looked up whole and only
the microseconds are read. Anything else goes to ``parse.timestamp``.

``read_stamps`` reads a job hash's timestamps as its HMGET answer arrives: a float is a third of
the bytes it replaces, and a scrape holds every answer until its end (75,000 at 5,000 jobs/s).
``stamp`` of a float is that float, so the rules and histograms read either.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import repeat
from operator import add, truediv

from rq_exporter_ng import parse

_SECOND = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", re.ASCII)
_SECONDS: dict[bytes, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> that second's epoch in microseconds
_MAX_SECONDS = 100_000
_split = struct.Struct("19sc6sc").unpack  # RQ's form: "YYYY-MM-DDTHH:MM:SS", ".", "ffffff", "Z"


def stamp(raw: bytes | str | float | None) -> float | None:
    """``parse.timestamp(raw)``: epoch seconds, None when unset; a ValueError when malformed. A
    float is a timestamp ``read_stamps`` read already."""
    if type(raw) is bytes and len(raw) == 27:
        second = _SECONDS.get(raw[:19])
        if second is not None and raw[19] == 46 and raw[26] == 90 and raw[20:26].isdigit():  # ".", "Z"
            # As parse.timestamp: whole microseconds, divided once.
            return (second + int(raw[20:26])) / 1_000_000
        value = parse.timestamp(raw)
        if second is None and value is not None:
            _learn(raw[:19])
        return value
    if type(raw) is float:
        return raw
    return parse.timestamp(raw)  # type: ignore[arg-type]  # not a float here


def read_stamps(answers: Iterable[list | None], where: tuple[int, ...]) -> None:
    """The timestamps at ``where`` in each answer (None: an error reply) as their floats, in place;
    one that does not read stays as it is (reading it again later gives the same error), and so
    does None. ``stamp``'s exact-form branch inlined: three a job, 225,000 a scrape at 5,000
    jobs/s (test_timing_stamps.py checks this against ``stamp`` on the same inputs)."""
    seconds = _SECONDS
    for answer in answers:
        if answer is not None:
            for i in where:
                raw = answer[i]
                if type(raw) is bytes and len(raw) == 27:
                    head, dot, micros, z = _split(raw)  # one call where three slices were (~0.1 us a job)
                    if dot == b"." and z == b"Z":
                        second = seconds.get(head)
                        if second is not None and micros.isdigit():
                            answer[i] = (second + int(micros)) / 1_000_000
                            continue
                if raw is not None:
                    try:
                        answer[i] = stamp(raw)
                    except ValueError:
                        pass


_STAMP = 27  # len(b"YYYY-MM-DDTHH:MM:SS.ffffffZ")
_SPLITS: dict[int, struct.Struct] = {}  # stamps in a group -> the struct that splits them all


def read_all(answers: Sequence[Sequence | None], where: tuple[int, ...]) -> list[float] | None:
    """What ``read_stamps`` makes of the timestamps at ``where`` in each answer, in order, as one
    list of floats, when every one of them is in RQ's exact form (most groups); None otherwise (an
    error reply, an unset or odd stamp: ``read_stamps`` then). Each step is one C call over the whole
    group (split, checks, lookups, sums) rather than a Python loop a stamp: 45,000 stamps a scrape at
    1,000 jobs/s. test_timing_stamps.py checks it against ``read_stamps``."""
    try:
        raws = [answer[i] for answer in answers for i in where]  # type: ignore[index]
        if set(map(len, raws)) != {_STAMP} or set(map(type, raws)) != {bytes}:
            return None
        joined = b"".join(raws)
    except TypeError:  # None: an error reply or an unset field; str: not from Redis
        return None
    n = len(raws)
    if joined[19::_STAMP] != b"." * n or joined[26::_STAMP] != b"Z" * n:
        return None
    split = _SPLITS.get(n)
    if split is None:
        if len(_SPLITS) > 64:
            _SPLITS.clear()
        split = _SPLITS[n] = struct.Struct("19sx6sx" * n)  # (second, micros) of each stamp
    parts = split.unpack(joined)
    heads, micros = parts[0::2], parts[1::2]
    if not b"".join(micros).isdigit():
        return None
    return from_parts(heads, micros)


def from_parts(heads: Sequence[bytes], micros: Sequence[bytes]) -> list[float] | None:
    """What ``stamp`` makes of each "<head>.<micros>Z" (heads "YYYY-MM-DDTHH:MM:SS", micros six
    ASCII digits), in order; None when a head is no second of a valid date."""
    try:
        seconds = list(map(_SECONDS.__getitem__, heads))
    except KeyError:  # a second not met yet: learned as stamp() learns it
        for head in set(heads).difference(_SECONDS):
            _learn(head)
        try:
            seconds = list(map(_SECONDS.__getitem__, heads))
        except KeyError:
            return None
    # (second + int(micros)) / 1_000_000, as stamp() computes it
    return list(map(truediv, map(add, seconds, map(int, micros)), repeat(1_000_000, len(micros))))


def _learn(prefix: bytes) -> None:
    if _SECOND.fullmatch(prefix) is None:
        return
    try:
        moment = datetime.fromisoformat(prefix.decode("ascii") + "+00:00")
    except ValueError:
        return
    if len(_SECONDS) >= _MAX_SECONDS:
        _SECONDS.clear()
    _SECONDS[prefix] = int(moment.timestamp()) * 1_000_000
