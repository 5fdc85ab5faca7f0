"""The gzipped body compressed in a thread is the same stream, once decompressed, as the joined parts."""

from __future__ import annotations

import gzip
import threading
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rq_exporter_ng.web import gzipped as module
from rq_exporter_ng.web.gzipped import gzipped


def plain(parts: list[bytes], level: int) -> bytes:
    """The straightforward way: one compressor, every part in turn, in this thread."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return b"".join([compressor.compress(part) for part in parts] + [compressor.flush()])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=40), st.sampled_from([1, 3, 6, 9]), st.integers(1, 700))
def test_decompresses_to_the_joined_parts(parts, level, batch):
    original = module.BATCH
    module.BATCH = batch  # small batches: the thread is used, many times
    try:
        body = b"".join(gzipped(iter(parts), level))
    finally:
        module.BATCH = original
    assert gzip.decompress(body) == b"".join(parts)
    assert zlib.decompress(body, 31) == zlib.decompress(plain(parts, level), 31)


def test_a_body_of_many_batches_uses_one_thread_and_equals_the_plain_stream():
    parts = [(f'rq_jobs{{queue="q{i}",status="queued"}} {i}.0\n' * 50).encode() for i in range(2000)]
    started = []
    original = threading.Thread.start

    def start(self):
        started.append(self.name)
        original(self)

    threading.Thread.start = start
    try:
        body = b"".join(gzipped(iter(parts), 3))
    finally:
        threading.Thread.start = original
    assert started == ["gzip"]
    assert sum(map(len, parts)) > 2 * module.BATCH
    assert gzip.decompress(body) == b"".join(parts) == zlib.decompress(plain(parts, 3), 31)


def test_a_small_body_starts_no_thread(monkeypatch):
    monkeypatch.setattr(module, "_Worker", None)  # would fail if used
    assert gzip.decompress(b"".join(gzipped(iter([b"a 1\n", b"b 2\n"]), 3))) == b"a 1\nb 2\n"


def test_a_failure_making_the_parts_stops_the_thread_and_is_raised():
    def parts():
        yield b"x" * (module.BATCH + 1)
        yield b"y" * (module.BATCH + 1)
        raise RuntimeError("family failed")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="family failed"):
        gzipped(parts(), 3)
    assert threading.active_count() == before


def test_a_failure_compressing_is_raised_in_the_writer(monkeypatch):
    class Broken:
        def compress(self, data):
            raise MemoryError("no room")

        def flush(self):
            return b""

    monkeypatch.setattr(module.zlib, "compressobj", lambda *args: Broken())
    parts = [b"x" * (module.BATCH + 1)] * 5  # more batches than the queue holds: put() must not block
    with pytest.raises(MemoryError, match="no room"):
        gzipped(iter(parts), 3)
