"""The gzipped body, compressed on a second core while its later parts are still being written.

zlib releases the GIL while it deflates, and writing the body's text is Python that holds it: at
10,000 queues the 11.8 MB of text cost ~120 ms to build and write and ~31 ms to compress, with
Redis idle meanwhile. Compressed in a thread, the deflating overlaps the writing instead of
following it. The thread is handed the text in batches of about BATCH bytes: each time it wants the
GIL back (to take the next batch) it may wait for the writer's switch interval (5 ms), so a
thread call per part (~150 parts of ~80 kB) would leave it behind; ~12 batches a scrape keep it up.
A body smaller than one batch is compressed in this thread, with no thread started.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterable

BATCH = 1 << 20  # bytes of text handed to the thread at a time
_WAITING = 2  # batches made and not compressed yet, at most (~2 MB more at the peak)
_DONE = None


def gzipped(parts: Iterable[bytes], level: int) -> list[bytes]:
    """The joined parts gzipped (a gzip header and trailer, no mtime), in pieces; an error making
    the parts is raised here once the thread has stopped."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    out: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    worker: _Worker | None = None
    try:
        for part in parts:
            batch.append(part)
            size += len(part)
            if size >= BATCH:
                if worker is None:
                    worker = _Worker(compressor, out)
                worker.put(b"".join(batch))
                batch, size = [], 0
    finally:
        if worker is not None:
            worker.finish()
    if batch:
        _compress(compressor, out, b"".join(batch))
    out.append(compressor.flush())
    return out


def _compress(compressor: zlib._Compress, out: list[bytes], data: bytes) -> None:
    compressed = compressor.compress(data)
    if compressed:  # zlib keeps small inputs to itself (b""): not sent
        out.append(compressed)


class _Worker:
    """One body's compressing thread: takes batches in order, appends to ``out``."""

    def __init__(self, compressor: zlib._Compress, out: list[bytes]) -> None:
        self._compressor = compressor
        self._out = out
        self._todo: queue.Queue[bytes | None] = queue.Queue(maxsize=_WAITING)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gzip", daemon=True)
        self._thread.start()

    def put(self, data: bytes) -> None:
        self._todo.put(data)

    def finish(self) -> None:
        """Waits for every batch put to be compressed; raises what the thread raised."""
        self._todo.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (data := self._todo.get()) is not _DONE:
            if self._error is not None:
                continue  # drained, so that put() never blocks for good
            try:
                _compress(self._compressor, self._out, data)
            except BaseException as error:  # handed to the writer's thread by finish()
                self._error = error
