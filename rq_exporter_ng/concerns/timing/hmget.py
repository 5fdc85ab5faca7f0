"""Round 3's HMGETs of job hashes, packed from a template when the batch sends them.

Every HMGET of a scrape differs from the next only by the job id inside its key, and the fields'
RESP is the same for all: one bytes ``%`` format a kind (with or without ``exc_info``) packs a
job in one step. A group keeps only its slice of the selection's candidates (which the scrape
holds anyway), neither the packed bytes nor command tuples: at 5,000 jobs/s the tuples of
75,000 HMGETs were ~14 MB of the peak, kept for the batch's error reports. The tuples are built
only when something asks (an error reply, redis-py's pipeline without hiredis).
tests/concerns/timing/test_timing_hmget.py checks ``packed()`` equals hiredis' packing of
``commands()``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from rq_exporter_ng.batch import Packed, hiredis
from rq_exporter_ng.concerns.timing.records import Candidate, RegistryPlan
from rq_exporter_ng.concerns.timing.rules import JOB_FIELDS
from rq_exporter_ng.concerns.timing.stamps import from_parts
from rq_exporter_ng.replies import DIGITS

_REGISTRY, _MEMBER = itemgetter(0), itemgetter(1)  # of a Candidate
EXC_INFO = b"exc_info"  # read with the hashes of failed jobs, for exception classes: one HMGET, not two

# Most finished jobs' answers, in RESP2: their three timestamps in RQ's form, no TTL field of their
# own (JOB_FIELDS without ``data``). Such a group's replies are read from their bytes (replies.py).
_STAMP_FORM = b"0000-00-00T00:00:00.000000Z"
_TYPICAL = b"*5\r\n" + (b"$27\r\n" + _STAMP_FORM + b"\r\n") * 3 + b"$-1\r\n" * 2
FRAMED_FIELDS = JOB_FIELDS[:5]
FRAME = _TYPICAL.translate(DIGITS)
_STAMPS_AT = tuple(i for i in range(len(_TYPICAL)) if _TYPICAL.startswith(_STAMP_FORM, i))
# The digits outside the timestamps (the lengths), which FRAME has as "0": checked as they are.
_LENGTH_DIGITS = tuple((i, _TYPICAL[i:i + 1]) for i in range(len(_TYPICAL))
                       if _TYPICAL[i:i + 1].isdigit() and not any(s <= i < s + 27 for s in _STAMPS_AT))
assert len(_STAMPS_AT) == 3 and len(_LENGTH_DIGITS) == 9
_SPLIT_ONE = "".join(f"{at - end}x19sx6sx" for at, end in zip(_STAMPS_AT, (0, *(s + 27 for s in _STAMPS_AT))))
_SPLIT_ONE += f"{len(_TYPICAL) - _STAMPS_AT[-1] - 27}x"  # each stamp's second and microseconds
# Groups come in any size (a registry's run): split as whole blocks of _BLOCK replies, then the
# rest, each struct made once (one for 1,000 replies takes ~0.1 ms to make; at most 20 blocks).
_BLOCK = 50
_SPLIT_BLOCKS: dict[int, struct.Struct] = {}  # blocks -> the struct that splits them
_SPLIT_REST = [struct.Struct(_SPLIT_ONE * n) for n in range(_BLOCK)]


class Compacted(list):
    """A group's answers read from their bytes, as rules.read_compact makes them of hiredis'."""


def read_frames(data: bytes) -> Compacted | None:
    """The answers (``(ended, started, enqueued)`` floats each) of replies in FRAME's form, whose
    bytes Replies.take_frames compared with it already (each digit as "0"); None unless each length
    is as in RQ's form and each timestamp of a valid second (then read by hiredis, as the rest)."""
    n, size = len(data) // len(FRAME), len(FRAME)
    for at, digit in _LENGTH_DIGITS:
        if data[at::size] != digit * n:
            return None
    blocks = n // _BLOCK
    split = _SPLIT_BLOCKS.get(blocks)
    if split is None:
        split = _SPLIT_BLOCKS[blocks] = struct.Struct(_SPLIT_ONE * (blocks * _BLOCK))
    parts = split.unpack_from(data) + _SPLIT_REST[n % _BLOCK].unpack_from(data, split.size)
    floats = from_parts(parts[0::2], parts[1::2])
    if floats is None:
        return None
    it = iter(floats)
    return Compacted(zip(it, it, it))


def _parts(fields: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """The RESP of ``HMGET <key> *fields`` before the key's length and after the key, made by hiredis."""
    command: Any = ("HMGET", b"", *fields)  # hiredis' stubs type a command as a 1-tuple
    empty = hiredis.pack_command(command)
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
    key_at = len(head)
    assert empty[:key_at] == head and empty[key_at:key_at + 6] == b"$0\r\n\r\n"
    return head, b"\r\n" + empty[key_at + 6:]


def _format(job: bytes, fields: tuple[bytes, ...]) -> bytes:
    """The RESP of ``HMGET job<id> *fields`` as a format of (length of the key, id)."""
    head, tail = _parts(fields)
    return head + b"$%d\r\n" + job.replace(b"%", b"%%") + b"%b" + tail.replace(b"%", b"%%")


class HashTemplate:
    """One scrape's HMGET formats: ``group(...)`` is a ``batch.Packed`` of some candidates."""

    __slots__ = ("_by_registry", "_formats", "_joins", "fields", "job", "registries", "with_exc")

    def __init__(self, job: bytes, fields: tuple[bytes, ...], registries: Sequence[RegistryPlan]) -> None:
        self.job = job
        self.fields = fields
        self.with_exc = (*fields, EXC_INFO)
        self.registries = registries
        self._formats = (_format(job, fields), _format(job, self.with_exc)) if hiredis is not None else None
        self._by_registry: list[bytes] | None = None
        self._joins: dict[tuple[bool, int], tuple[bytes, bytes]] = {}  # (with exc_info, key length) -> parts

    def commands(self, candidates: Sequence[Candidate]) -> list[tuple]:
        job, fields, with_exc, registries = self.job, self.fields, self.with_exc, self.registries
        return [("HMGET", job + c[1], *(with_exc if registries[c[0]].status == "failed" else fields))
                for c in candidates]  # (registry, member, ...)

    def pack(self, candidates: Sequence[Candidate]) -> bytes:
        assert self._formats is not None
        if self._by_registry is None:  # each registry's format, looked up once a scrape, not once a job
            plain, exc = self._formats
            self._by_registry = [exc if rp.status == "failed" else plain for rp in self.registries]
        n, formats, out = len(self.job), self._by_registry, list[bytes]()
        # A registry's run of ids of one length (RQ's are UUIDs) is one join: the commands between
        # two ids are all the same bytes. Any other run, a format a job.
        for registry, run in groupby(candidates, key=_REGISTRY):
            members = list(map(_MEMBER, run))
            lengths = set(map(len, members))
            if len(lengths) == 1:
                before, after = self._around(self.registries[registry].status == "failed", n + lengths.pop())
                out += (before, (after + before).join(members), after)
            else:
                out += [formats[registry] % (n + len(member), member) for member in members]
        return b"".join(out)

    def _around(self, exc: bool, length: int) -> tuple[bytes, bytes]:
        """What comes before and after a job id of a key of ``length`` in an HMGET of that kind."""
        found = self._joins.get((exc, length))
        if found is None:
            head, tail = _parts(self.with_exc if exc else self.fields)
            found = self._joins[exc, length] = (head + b"$%d\r\n" % length + self.job, tail)
        return found

    def group(self, candidates: Sequence[Candidate], finished: bool = False) -> HashGroup:
        """``finished``: every candidate is of a finished registry (no ``exc_info`` read)."""
        return HashGroup(self, candidates, FRAME if finished and self.fields == FRAMED_FIELDS else b"")


class HashGroup(Packed):
    __slots__ = ("candidates", "frame", "template")

    def __init__(self, template: HashTemplate, candidates: Sequence[Candidate], frame: bytes = b"") -> None:
        super().__init__()
        self.template = template
        self.candidates = candidates
        self.frame = frame  # FRAME: read from their bytes when their replies allow (batch.Packed)

    def read_frames(self, data: bytes) -> Compacted | None:
        return read_frames(data)

    def packed(self) -> bytes:
        return self.template.pack(self.candidates)

    def commands(self) -> Sequence[tuple]:
        return self.template.commands(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)
