"""Exception classes from the values RQ stores, without Redis (concerns/exception_classes.py's pure part).

tests/concerns/test_exception_classes_rq_workers.py reads what real RQ workers of both layouts store.
"""

from __future__ import annotations

import base64
import traceback
import zlib

import pytest

from rq_exporter_ng.concerns.exception_classes import (
    MAX_TEXT,
    OTHER,
    UNKNOWN,
    ExceptionCounts,
    ExceptionTotals,
    Malformed,
    classify,
    exception_class,
    families,
    hash_text,
    latest_exc_string,
    result_text,
)
from rq_exporter_ng.concerns.timing.records import Ended, Outcome


class CustomError(Exception):
    pass


def formatted(error: BaseException) -> str:
    """A traceback as RQ's worker formats it (traceback.format_exception)."""
    try:
        raise error
    except BaseException as caught:
        return "".join(traceback.format_exception(type(caught), caught, caught.__traceback__))


def chained() -> str:
    try:
        try:
            {}["missing"]
        except KeyError as inner:
            raise ValueError("while handling") from inner
    except ValueError as outer:
        return "".join(traceback.format_exception(type(outer), outer, outer.__traceback__))
    raise AssertionError("unreachable")


@pytest.mark.parametrize(("text", "expected"), [
    (formatted(RuntimeError("failure on purpose")), "RuntimeError"),
    (formatted(CustomError("x: y: z")), f"{__name__}.CustomError"),
    (formatted(KeyboardInterrupt()), "KeyboardInterrupt"),  # no message, no colon
    (chained(), "ValueError"),  # the exception raised last, not the one it was handling
    (formatted(ValueError("first line\nsecond line: not a class")), "ValueError"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
     "requests.exceptions.Timeout: read timed out\n", "requests.exceptions.Timeout"),
    # RQ's own notes where there is no traceback
    ("Moved to FailedJobRegistry at 2026-12-01 20:10:00.123456", None),  # RQ 1.10 cleanup
    ("Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-12-01 20:10:00+00:00", None),  # RQ 2.x
    ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ", None),
    ("Job stopped by user, work-horse terminated.", None),
    ("", None),
    ("   \n\t\n", None),
])
def test_the_class_is_the_last_unindented_line_up_to_its_colon(text, expected):
    assert exception_class(text) == expected


def test_hash_values_are_zlib_or_plain_text_as_rq_reads_them():
    text = formatted(RuntimeError("boom"))
    assert hash_text(zlib.compress(text.encode())) == text  # RQ 0.13 to 3.0 write zlib
    assert hash_text(text.encode()) == text  # before 0.13: plain text
    assert classify(zlib.compress(text.encode()), None) == "RuntimeError"


def test_results_stream_values_are_base64_of_zlib():
    text = formatted(ZeroDivisionError("division by zero"))
    stored = base64.b64encode(zlib.compress(text.encode()))
    assert result_text(stored) == text
    assert classify(None, stored) == "ZeroDivisionError"


def test_the_stream_wins_over_the_hash_unless_it_holds_no_traceback():
    hash_value = zlib.compress(formatted(KeyError("k")).encode())
    stream_value = base64.b64encode(zlib.compress(formatted(OSError("o")).encode()))
    note = base64.b64encode(zlib.compress(b"Work-horse terminated unexpectedly; waitpid returned 9"))
    assert classify(hash_value, stream_value) == "OSError"
    assert classify(hash_value, note) == "KeyError"
    assert classify(None, note) == UNKNOWN
    assert classify(None, None) == UNKNOWN


@pytest.mark.parametrize(("exc_info", "exc_string"), [
    (b"\xff\xfe not utf-8", None),
    (zlib.compress(b"\xff\xfe"), None),  # zlib of bytes that are not UTF-8
    (None, b"not base64 !!"),
    (None, base64.b64encode(b"not zlib")),
    (None, base64.b64encode(zlib.compress(b"x" * (MAX_TEXT + 1)))),  # a bomb is refused, not inflated
])
def test_malformed_values_raise(exc_info, exc_string):
    with pytest.raises(Malformed):
        classify(exc_info, exc_string)


def test_latest_stream_entry_in_resp2_and_resp3_shapes():
    value = base64.b64encode(zlib.compress(b"E: e"))
    assert latest_exc_string([[b"1-0", [b"type", b"2", b"exc_string", value]]]) == value
    assert latest_exc_string([[b"1-0", {b"type": b"2", b"exc_string": value}]]) == value
    assert latest_exc_string([[b"1-0", [b"type", b"1", b"return_value", b"gAR="]]]) is None  # a success
    assert latest_exc_string([]) is None  # no stream: the job's RQ wrote the hash
    with pytest.raises(Malformed):
        latest_exc_string([b"not an entry"])
    with pytest.raises(Malformed):
        latest_exc_string([[b"1-0", [b"exc_string", 5]]])


def failed(queue: str, job: str) -> Ended:
    return Ended(queue, "failed", job.encode(), 1.0, None)


def test_every_failed_job_counts_once_and_classes_past_the_limit_are_other():
    counts = ExceptionCounts(limit=2)
    ended = (failed("q", "a"), failed("q", "b"), failed("q", "c"), failed("r", "d"), failed("q", "e"),
             Ended("q", "finished", b"f"))
    classes = {("q", b"a"): "KeyError", ("q", b"b"): "ValueError", ("q", b"c"): "OSError",
               ("r", b"d"): "KeyError"}
    counts.record(Outcome(ended, (("q", "failed", 3), ("q", "finished", 4)), ()), classes)
    assert dict(counts.counts) == {("q", "KeyError"): 1, ("q", "ValueError"): 1, ("q", OTHER): 1,
                                   ("r", "KeyError"): 1, ("q", UNKNOWN): 4}  # e not read, 3 kept forever
    family = next(families(ExceptionTotals(counts.rows())))
    assert family.name == "rq_job_exceptions"
    assert next((s.labels, s.value) for s in family.samples) == ({"queue": "q", "exception": "KeyError"}, 1)
    counts.forget("q")
    assert dict(counts.counts) == {("r", "KeyError"): 1}


def test_the_classes_of_a_queue_with_no_key_for_gone_queue_seconds_are_dropped():
    from types import SimpleNamespace

    from rq_exporter_ng.concern import Given, taken
    from rq_exporter_ng.concerns.exception_classes import ExceptionClasses, ExceptionOptions, ExceptionReads
    from rq_exporter_ng.concerns.failed_queue import FailedQueue
    from rq_exporter_ng.concerns.timing.job_timing import JobTiming
    from rq_exporter_ng.concerns.timing.reads import NOTHING_ENDED
    from rq_exporter_ng.keys import Keys
    from rq_exporter_ng.settings import Settings
    from rq_exporter_ng.snapshot import QueueState, Snapshot

    concern = ExceptionClasses(taken(ExceptionOptions, Settings(gone_queue_seconds=60)), Keys("rq"))
    concern.counts.counts.update({("gone", "KeyError"): 2, ("kept", "OSError"): 1})

    def scrape(now: float, *queues: str) -> dict:
        timing = SimpleNamespace(outcome=NOTHING_ENDED, exc_info={})
        given = Given(results={JobTiming: timing, FailedQueue: None},
                      snapshot=Snapshot(now, queues=tuple(QueueState(q) for q in queues)))
        return dict(ExceptionReads(concern, None).result(given).counts)  # type: ignore[arg-type]

    T = 1000.0
    assert scrape(T, "gone", "kept") == {("gone", "KeyError"): 2, ("kept", "OSError"): 1}
    assert scrape(T + 59, "kept") == {("gone", "KeyError"): 2, ("kept", "OSError"): 1}
    assert scrape(T + 60, "kept") == {("kept", "OSError"): 1}


@pytest.mark.parametrize("prefix", ["rq", "my%app"])
def test_the_results_stream_reads_are_packed_as_hiredis_packs_them(prefix):
    import hiredis

    from rq_exporter_ng.concern import taken
    from rq_exporter_ng.concerns.exception_classes import ExceptionClasses, ExceptionOptions
    from rq_exporter_ng.keys import Keys
    from rq_exporter_ng.settings import Settings

    concern = ExceptionClasses(taken(ExceptionOptions, Settings()), Keys(prefix))
    assert concern.streams is not None
    ids = [b"0b9d7c3e-5f8a-4c3e-9d1a-2f6b8e4a7c10", b"%s%d", b"\xff\x00 odd", b"", b"x" * 300]
    run = concern.streams.run(ids)
    expected = [("XREVRANGE", prefix.encode() + b":results:" + job_id, "+", "-", "COUNT", 1) for job_id in ids]
    assert list(run.commands()) == expected
    assert len(run) == len(ids)
    assert run.packed() == b"".join(map(hiredis.pack_command, expected))


def _stream(exc_string: bytes | None) -> list:
    """An XREVRANGE ... COUNT 1 answer (RESP2) whose entry holds ``exc_string`` (none: an empty stream)."""
    return [] if exc_string is None else [[b"1-0", [b"type", b"2", b"exc_string", exc_string]]]


_TEXTS = [formatted(RuntimeError("x")), formatted(CustomError("a: b")), chained(),
          "Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-12-01 20:10:00+00:00", "",
          formatted(RuntimeError("unknown")).replace("RuntimeError", "unknown")]
_STREAM_VALUES = [None, b"", b"not base64!", base64.b64encode(b"not zlib"),
                  *(base64.b64encode(zlib.compress(t.encode())) for t in _TEXTS)]
_HASH_VALUES = [None, b"", zlib.compress(formatted(KeyError("k")).encode()), b"plain text, no traceback",
                zlib.compress(b"\xff\xfe")]


@pytest.mark.parametrize("warm", [False, True])
def test_streams_classified_as_they_arrive_give_what_classifying_after_the_read_gives(warm):
    """ExceptionReads._take classifies each stream that names a class as it arrives; _classes
    decides the rest with the hash's exc_info. Every pair of (exc_info, stream) value, both ways,
    from an empty cache and from one the other way filled: the same classes and problems."""
    from itertools import product

    from rq_exporter_ng.concern import taken
    from rq_exporter_ng.concerns.exception_classes import ExceptionClasses, ExceptionOptions, ExceptionReads
    from rq_exporter_ng.keys import Keys
    from rq_exporter_ng.settings import Settings

    pairs = list(product(_HASH_VALUES, _STREAM_VALUES))
    keys = [("q", b"job-%d" % i) for i in range(len(pairs))]
    exc_info = {key: info for key, (info, _) in zip(keys, pairs)}
    streams = [_stream(value) for _, value in pairs]

    def classes(early: bool, concern: ExceptionClasses) -> tuple:
        reads = ExceptionReads(concern, None)  # type: ignore[arg-type]
        reads.read = keys
        if early:
            reads._take(streams)
            assert any(reads.early) and None in reads.early  # some classified as they came, some left
        else:
            reads.streams = streams
        found, problems = reads._classes(exc_info)
        return found, [(p.reason, p.key) for p in problems]

    def concern() -> ExceptionClasses:
        return ExceptionClasses(taken(ExceptionOptions, Settings()), Keys("rq"))

    stored = [(info, latest_exc_string(stream)) for (info, _), stream in zip(pairs, streams)]
    expected = {key: classify(*pair) if not _malformed(pair) else UNKNOWN for key, pair in zip(keys, stored)}
    assert classes(False, concern())[0] == expected
    if warm:  # each way's cache filled by the other way first
        one, other = concern(), concern()
        classes(True, one), classes(False, other)
        assert classes(True, other) == classes(False, one) == classes(False, concern())
    else:
        assert classes(True, concern()) == classes(False, concern())
    assert any(v not in (UNKNOWN,) for v in expected.values()) and classes(False, concern())[1]  # both kinds met


def _malformed(pair: tuple) -> bool:
    try:
        classify(*pair)
    except Malformed:
        return True
    return False
