"""Failures by exception class: ``rq_job_exceptions_total{queue,exception}`` of the jobs job timing
counts as failed.

Where RQ keeps a failed job's traceback (RQ's code, checked for 0.13, 1.10, 1.15, 1.16, 2.x and 3.0):

- the job hash's ``exc_info``: the text compressed with zlib (plain text from RQ before 0.13).
  RQ < 1.12 writes it; 1.12 to 1.16 only on a Redis without streams; 2.x and 3.0 never;
- the job's results stream ``rq:results:<id>`` (RQ 1.12+ on Redis 5+): its latest entry's
  ``exc_string``, base64 of the zlib-compressed text.

Which one a job has cannot be told before reading, so both ride in round 3 with the job hash
job timing reads anyway (timing_redis.py): ``exc_info`` as one more field of that HMGET, and one
``XREVRANGE <stream> + - COUNT 1`` per newly failed job. Nothing is unpickled. Parsing is pure.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import Metric

from rq_exporter import parse
from rq_exporter.batch import Batch
from rq_exporter.keys import Keys
from rq_exporter.metrics import table
from rq_exporter.snapshot import Problem
from rq_exporter.timing_redis import TimingScan
from rq_exporter.timing_tracker import Outcome

EXC_FIELD = b"exc_info"
UNKNOWN, OTHER = "unknown", "other"
MAX_TEXT = 1 << 20  # decompressed bytes read of one traceback; beyond it the value is malformed
_CLASS = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_MAX_CLASS = 200
# Stored values already classified (a burst of one failure stores the same bytes again and again),
# kept until this many, then forgotten all at once: ~0.5 us a hit against ~5 us to decode. Values
# over CACHED_BYTES are not kept, so the cache stays under ~2 MB.
CACHE_SIZE = 500
CACHED_BYTES = 4096


class Malformed(ValueError):
    """The stored value is not what RQ writes (bad base64, zlib or UTF-8, too large)."""


def _inflate(raw: bytes) -> bytes:
    inflater = zlib.decompressobj()
    text = inflater.decompress(raw, MAX_TEXT)
    if inflater.unconsumed_tail:
        raise Malformed(f"more than {MAX_TEXT} bytes once decompressed")
    if not inflater.eof:
        raise zlib.error("incomplete zlib stream")
    return text


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed(f"not UTF-8: {error}") from None


def hash_text(raw: bytes) -> str:
    """A job hash's ``exc_info`` as text: zlib, or the plain text older RQ wrote (as RQ reads it)."""
    try:
        return _utf8(_inflate(raw))
    except zlib.error:
        if len(raw) > MAX_TEXT:
            raise Malformed(f"more than {MAX_TEXT} bytes") from None
        return _utf8(raw)


def result_text(raw: bytes) -> str:
    """A results stream entry's ``exc_string`` (base64 of zlib) as text."""
    try:
        compressed = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as error:
        raise Malformed(f"not base64: {error}") from None
    try:
        return _utf8(_inflate(compressed))
    except zlib.error as error:
        raise Malformed(f"not zlib: {error}") from None


def latest_exc_string(reply: Any) -> bytes | None:
    """The ``exc_string`` of the entry ``XREVRANGE key + - COUNT 1`` answered; None when the stream
    is empty or its latest entry has none (a success, or an RQ that wrote the hash instead)."""
    if reply == [] or reply is None:
        return None
    try:
        _, fields = reply[0]
        if isinstance(fields, dict):
            value = fields.get(b"exc_string")
        else:
            value = next((fields[i + 1] for i in range(0, len(fields) - 1, 2) if fields[i] == b"exc_string"), None)
    except (TypeError, ValueError, IndexError, KeyError) as error:
        raise Malformed(f"not a stream entry: {error}") from None
    if value is not None and not isinstance(value, bytes):
        raise Malformed("exc_string is not a string")
    return value or None


def exception_class(text: str) -> str | None:
    """The class of the exception a traceback ends with, dotted as written; None when the text
    is no traceback (RQ's own notes: an abandoned job moved by its cleanup, a killed work horse).

    The last non-indented line up to its first ``:``. A message's own further lines are not
    taken for it: after a frame (an indented line), the first non-indented line is the one."""
    lines = text.splitlines()
    i = len(lines) - 1
    first_after = ""  # the first non-blank line after the last indented one
    while i >= 0 and not lines[i][:1].isspace():
        if lines[i].strip():
            first_after = lines[i]
        i -= 1
    line = first_after
    if not line:  # the text ends with indented lines: the last non-indented line before them
        line = next((line for line in reversed(lines[:max(i, 0)]) if line.strip() and not line[:1].isspace()), "")
    name = line.split(":", 1)[0].strip()
    return name if len(name) <= _MAX_CLASS and _CLASS.fullmatch(name) else None


def classify(exc_info: bytes | None, exc_string: bytes | None) -> str:
    """The class from the stream's value, else the hash's; UNKNOWN when neither is a traceback.
    Raises Malformed for a value RQ cannot have written."""
    if exc_string is not None:
        found = exception_class(result_text(exc_string))
        if found is not None or not exc_info:
            return found or UNKNOWN
    if exc_info:
        return exception_class(hash_text(exc_info)) or UNKNOWN
    return UNKNOWN


class ExceptionScan:
    """One scrape's exception reads (an ExtraReads); it must come right after the timing scan it
    rides on in ``read_snapshot(extras=...)``, as round 3 reads what that scan selected."""

    def __init__(self, timing: TimingScan, keys: Keys, cache: dict | None = None) -> None:
        self.timing = timing
        self.cache: dict[tuple[bytes | None, bytes | None], str] = {} if cache is None else cache
        self.results = keys.kind("results")
        self.keys = keys
        timing.extra_fields["failed"] = (EXC_FIELD,)
        self.read: list[int] = []  # indexes in timing.selection.to_read of the failed jobs read
        self.streams: list[Any] = []  # their XREVRANGE answers, in that order

    def second(self, batch: Batch, queues: list[tuple[bytes, str]], now: float) -> None:
        pass

    def third(self, batch: Batch) -> None:
        plan, selection = self.timing.plan, self.timing.selection
        if plan is None or selection is None:
            return
        # Only what a TTL window returned: the probe's and the sweep's finds are old entries (their
        # TTL's window counts them on a later scrape, if ever), and an idle registry costs nothing.
        failed = [(k, c) for k, c in enumerate(selection.to_read)
                  if c.window is not None and plan.registries[c.registry].status == "failed"]
        if failed:
            self.read = [k for k, _ in failed]
            batch.add_group(self._take, [("XREVRANGE", self.results + c.member, "+", "-", "COUNT", 1)
                                         for _, c in failed])

    def _take(self, replies: list) -> None:
        self.streams = replies

    def classes(self) -> tuple[dict[tuple[str, bytes], str], list[Problem]]:
        """(queue, job id) -> exception class, for the failed jobs read this scrape."""
        plan, selection = self.timing.plan, self.timing.selection
        found: dict[tuple[str, bytes], str] = {}
        problems: list[Problem] = []
        if plan is None or selection is None or not self.read:
            return found, problems
        to_read, extra = selection.to_read, self.timing.extra_values
        for i, k in enumerate(self.read):
            c = to_read[k]
            values = extra[k] if k < len(extra) else None
            stream = self.streams[i] if i < len(self.streams) else None
            try:
                stored = (values[0] if values else None, latest_exc_string(stream))
                cls = self.cache.get(stored)
                if cls is None:
                    cls = classify(*stored)
                    if len(stored[0] or b"") + len(stored[1] or b"") <= CACHED_BYTES:
                        if len(self.cache) >= CACHE_SIZE:
                            self.cache.clear()
                        self.cache[stored] = cls
            except Malformed as error:
                problems.append(Problem("bad_exc_info", parse.text(self.keys.job(c.member)), str(error)[:200]))
                cls = UNKNOWN
            found[(plan.registries[c.registry].queue, c.member)] = cls
        return found, problems


class ExceptionCounts:
    """Failed jobs per queue and exception class since the exporter started, kept by Timing."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self.counts: Counter[tuple[str, str]] = Counter()
        self.known: set[str] = set()
        self.cache: dict = {}  # for ExceptionScan, across scrapes

    def record(self, outcome: Outcome, classes: Mapping[tuple[str, bytes], str]) -> None:
        """Every failed job of ``outcome`` counts once: its class, else UNKNOWN (not read: past the
        per-scrape cap, kept forever, or no traceback)."""
        for job in outcome.ended:
            if job.status == "failed":
                self.counts[(job.queue, self._label(classes.get((job.queue, job.member), UNKNOWN)))] += 1
        for queue, status, grown in outcome.kept_forever:
            if status == "failed":
                self.counts[(queue, UNKNOWN)] += grown

    def _label(self, cls: str) -> str:
        if cls in self.known or cls == UNKNOWN:
            return cls
        if len(self.known) < self.limit:
            self.known.add(cls)
            return cls
        return OTHER

    def forget(self, queue: str) -> None:
        for key in [key for key in self.counts if key[0] == queue]:
            del self.counts[key]

    def families(self) -> Iterator[Metric]:
        yield table("rq_job_exceptions_total", sorted(self.counts.items()))
