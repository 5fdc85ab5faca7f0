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

from collections.abc import Sequence
from typing import Any

from rq_exporter_ng.batch import Packed, hiredis
from rq_exporter_ng.concerns.timing.records import Candidate, RegistryPlan

EXC_INFO = b"exc_info"  # read with the hashes of failed jobs, for exception classes: one HMGET, not two


def _format(job: bytes, fields: tuple[bytes, ...]) -> bytes:
    """The RESP of ``HMGET job<id> *fields`` as a format of (length of the key, id), made by hiredis."""
    command: Any = ("HMGET", b"", *fields)  # hiredis' stubs type a command as a 1-tuple
    empty = hiredis.pack_command(command)
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
    key_at = len(head)
    assert empty[:key_at] == head and empty[key_at:key_at + 6] == b"$0\r\n\r\n"
    tail = empty[key_at + 6:]
    return head + b"$%d\r\n" + job.replace(b"%", b"%%") + b"%b\r\n" + tail.replace(b"%", b"%%")


class HashTemplate:
    """One scrape's HMGET formats: ``group(...)`` is a ``batch.Packed`` of some candidates."""

    __slots__ = ("_by_registry", "_formats", "fields", "job", "registries", "with_exc")

    def __init__(self, job: bytes, fields: tuple[bytes, ...], registries: Sequence[RegistryPlan]) -> None:
        self.job = job
        self.fields = fields
        self.with_exc = (*fields, EXC_INFO)
        self.registries = registries
        self._formats = (_format(job, fields), _format(job, self.with_exc)) if hiredis is not None else None
        self._by_registry: list[bytes] | None = None

    def commands(self, candidates: Sequence[Candidate]) -> list[tuple]:
        job, fields, with_exc, registries = self.job, self.fields, self.with_exc, self.registries
        return [("HMGET", job + c.member, *(with_exc if registries[c.registry].status == "failed" else fields))
                for c in candidates]

    def pack(self, candidates: Sequence[Candidate]) -> bytes:
        assert self._formats is not None
        if self._by_registry is None:  # each registry's format, looked up once a scrape, not once a job
            plain, exc = self._formats
            self._by_registry = [exc if rp.status == "failed" else plain for rp in self.registries]
        n, formats = len(self.job), self._by_registry
        return b"".join([formats[c[0]] % (n + len(c[1]), c[1]) for c in candidates])  # (registry, member, ...)

    def group(self, candidates: Sequence[Candidate]) -> HashGroup:
        return HashGroup(self, candidates)


class HashGroup(Packed):
    __slots__ = ("candidates", "template")

    def __init__(self, template: HashTemplate, candidates: Sequence[Candidate]) -> None:
        super().__init__()
        self.template = template
        self.candidates = candidates

    def packed(self) -> bytes:
        return self.template.pack(self.candidates)

    def commands(self) -> Sequence[tuple]:
        return self.template.commands(self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)
