"""Failures by exception class: ``rq_job_exceptions_total{queue,exception}`` of the jobs job timing
counts as failed.

Where RQ keeps a failed job's traceback (RQ's code, checked for 0.13, 1.10, 1.15, 1.16, 2.x and 3.0):

- the job hash's ``exc_info``: the text compressed with zlib (plain text from RQ before 0.13).
  RQ < 1.12 writes it; 1.12 to 1.16 only on a Redis without streams; 2.x and 3.0 never;
- the job's results stream ``rq:results:<id>`` (RQ 1.12+ on Redis 5+): its latest entry's
  ``exc_string``, base64 of the zlib-compressed text.

Which one a job has cannot be told before reading, so both ride in round 3 with the job hash
job timing reads anyway (timing/reads.py): ``exc_info`` as one more field of that HMGET, which job
timing's result hands on, and one ``XREVRANGE <stream> + - COUNT 1`` per newly failed job. Nothing
is unpickled. Parsing is pure.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads, taken
from rq_exporter_ng.concerns.failed_queue import NAME as FAILED_QUEUE
from rq_exporter_ng.concerns.failed_queue import FailedQueue
from rq_exporter_ng.concerns.timing.job_timing import JobTiming
from rq_exporter_ng.concerns.timing.reads import TimingReads
from rq_exporter_ng.concerns.timing.records import Outcome
from rq_exporter_ng.families.table import Row, table
from rq_exporter_ng.gone import GoneQueues
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.packing import run_of, template
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem

EXC_FIELD = b"exc_info"
UNKNOWN, OTHER = "unknown", "other"
MAX_TEXT = 1 << 20  # decompressed bytes read of one traceback; beyond it the value is malformed
_CLASS = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")
_MAX_CLASS = 200
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


if sys.version_info >= (3, 11):
    def _b64decode(raw: bytes) -> bytes:
        # In C: b64decode(validate=True) checks the alphabet with a regular expression first
        # (~0.6 us of a ~5 us traceback). Both refuse the same values RQ cannot have written.
        return binascii.a2b_base64(raw, strict_mode=True)
else:
    def _b64decode(raw: bytes) -> bytes:
        return base64.b64decode(raw, validate=True)


def result_text(raw: bytes) -> str:
    """A results stream entry's ``exc_string`` (base64 of zlib) as text."""
    try:
        compressed = _b64decode(raw)
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
        else:  # RESP2: field, value, field, value, ...
            names = fields[0:len(fields) - 1:2]
            value = fields[2 * names.index(b"exc_string") + 1] if b"exc_string" in names else None
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


@dataclass(frozen=True)
class ExceptionOptions:
    exception_label_limit: int
    gone_queue_seconds: int


@dataclass(frozen=True)
class ExceptionTotals:
    """Failed jobs per (queue, exception class) since the exporter started, as they stand now."""

    counts: list[Row]  # ((queue, exception class), failed jobs)
    problems: tuple[Problem, ...] = ()


class ExceptionClasses(Concern[ExceptionOptions, "ExceptionReads", ExceptionTotals]):
    """On with job timing, whose failed jobs it classifies; RQ 0.x's failed queue's count as unknown."""

    needs = (FailedQueue, JobTiming)

    @classmethod
    def options(cls, settings: Settings) -> ExceptionOptions:
        return taken(ExceptionOptions, settings)

    def __init__(self, options: ExceptionOptions, keys: Keys) -> None:
        self.keys = keys
        self.counts = ExceptionCounts(options.exception_label_limit)
        self.gone = GoneQueues(options.gone_queue_seconds)
        # Stored values already classified (a burst of one failure stores the same bytes again and
        # again), kept until CACHE_SIZE, then forgotten all at once: ~0.5 us a hit against ~5 us to
        # decode. Values over CACHED_BYTES are not kept, so the cache stays under ~2 MB.
        self.cache: dict[tuple[bytes | None, bytes | None], str] = {}
        self.results = keys.kind("results")
        # One XREVRANGE a newly failed job, differing only by the job id: packed from a template
        # (~1.5 ms a scrape less at 750 failed jobs; None: command by command, packing.py).
        self.streams = template(self.stream_read)

    def stream_read(self, job_id: bytes) -> list[tuple]:
        """The read of a job's results stream: its latest entry."""
        return [("XREVRANGE", self.results + job_id, "+", "-", "COUNT", 1)]

    def reads(self, given: Given) -> ExceptionReads:
        return ExceptionReads(self, given.reads(JobTiming))

    def unread(self) -> ExceptionTotals:
        return ExceptionTotals(self.counts.rows())

    def families(self, result: ExceptionTotals) -> Iterator[Metric]:
        return families(result)


class ExceptionReads(Reads[ExceptionTotals]):
    """One scrape's reads of the results streams of the failed jobs job timing reads, in round 3
    (their hashes' exc_info rides in job timing's HMGET)."""

    def __init__(self, concern: ExceptionClasses, timing: TimingReads) -> None:
        self.concern = concern
        self.timing = timing
        self.read: list[tuple[str, bytes]] = []  # (queue, job id) of the failed jobs read
        self.streams: list[Any] = []  # their XREVRANGE answers, in that order
        self.early: list[str | None] = []  # the class each stream names, found as it arrived

    def third(self, batch: Batch) -> None:
        self.read = self.timing.failed_in_windows()  # job timing's third has run
        if self.read:
            members = [member for _, member in self.read]
            batch.add_group(self._take, run_of(self.concern.streams, self.concern.stream_read, members))

    def _take(self, replies: list) -> None:
        self.streams = replies
        # Classified as they arrive: job timing's HMGETs go after these (Batch.add_last), so this
        # runs while Redis still answers them, not after round 3 (~5 ms a scrape at 1,000 jobs/s).
        self.early = [self._stream_class(reply) for reply in replies]

    def _stream_class(self, reply: Any) -> str | None:
        """The class the stream's traceback names: the job's, whatever its hash's exc_info holds
        (``classify``); None when it names none or cannot be read (``_classes`` decides then, with
        the hash, and counts what is malformed)."""
        cache = self.concern.cache
        try:
            exc_string = latest_exc_string(reply)
            if exc_string is None:
                return None
            cls = cache.get((None, exc_string))  # as _classes keeps a job whose hash has no exc_info
            if cls is not None:
                return cls if cls != UNKNOWN else None
            cls = exception_class(result_text(exc_string))
        except Malformed:
            return None
        if cls is not None:
            _keep(cache, (None, exc_string), cls)
        return cls

    def result(self, given: Given) -> ExceptionTotals:
        """Every failed job job timing counted this scrape counts once: its class, else UNKNOWN;
        RQ 0.x's failed queue's (its tracebacks are not read) count as UNKNOWN."""
        classes, problems = self._classes(given.result(JobTiming).exc_info)
        counts = self.concern.counts
        counts.record(given.result(JobTiming).outcome, classes)
        old = given.result(FailedQueue)
        if old is not None and old.legacy:
            counts.forget(FAILED_QUEUE)
            counts.record(Outcome(old.ended, (), ()), {})
        snapshot = given.snapshot
        present = {q.name for q in snapshot.queues}
        for queue in self.concern.gone.expired(present, {key[0] for key in counts.counts}, snapshot.time):
            counts.forget(queue)
        return ExceptionTotals(counts.rows(), tuple(problems))

    def _classes(self, exc_info: Mapping[tuple[str, bytes], bytes | None],
                 ) -> tuple[dict[tuple[str, bytes], str], list[Problem]]:
        """(queue, job id) -> exception class, for the failed jobs read this scrape."""
        found: dict[tuple[str, bytes], str] = {}
        problems: list[Problem] = []
        cache = self.concern.cache
        for i, key in enumerate(self.read):
            early = self.early[i] if i < len(self.early) else None
            if early is not None:
                found[key] = early
                continue
            stream = self.streams[i] if i < len(self.streams) else None
            try:
                stored = (exc_info.get(key), latest_exc_string(stream))
                cls = cache.get(stored)
                if cls is None:
                    cls = classify(*stored)
                    _keep(cache, stored, cls)
            except Malformed as error:
                problems.append(Problem("bad_exc_info", parse.text(self.concern.keys.job(key[1])), str(error)[:200]))
                cls = UNKNOWN
            found[key] = cls
        return found, problems


def _keep(cache: dict[tuple[bytes | None, bytes | None], str], stored: tuple[bytes | None, bytes | None],
          cls: str) -> None:
    """``cls`` cached for ``stored`` unless its values are over CACHED_BYTES; a full cache is
    forgotten all at once first."""
    if len(stored[0] or b"") + len(stored[1] or b"") <= CACHED_BYTES:
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[stored] = cls


class ExceptionCounts:
    """Failed jobs per queue and exception class since the exporter started."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: Counter[tuple[str, str]] = Counter()
        self.known: set[str] = set()

    def record(self, outcome: Outcome, classes: Mapping[tuple[str, bytes], str]) -> None:
        """Every failed job of ``outcome`` counts once: its class, else UNKNOWN (not read: past the
        per-scrape cap, kept forever, or no traceback)."""
        assert outcome.failed is not None  # (set by Outcome)
        for queue, _, member, _, _ in outcome.failed:  # (some are plain tuples: records.Ended)
            self.counts[(queue, self._label(classes.get((queue, member), UNKNOWN)))] += 1
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

    def rows(self) -> list[Row]:
        return [(key, n) for key, n in sorted(self.counts.items())]


def families(totals: ExceptionTotals) -> Iterator[Metric]:
    yield table("rq_job_exceptions_total", totals.counts)
