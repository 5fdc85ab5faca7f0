"""Replies read from a connection's socket as they arrive, for batch.py's raw path.

Most replies are parsed by a hiredis reader. A connection that carries only groups whose every
reply has a fixed form (``batch.Packed.frame``: job timing's HMGETs of finished jobs, three
timestamps and two unset fields each) can be read as bytes instead (``framed``): the group's
bytes are checked and read in a few C calls over the whole group (hmget.py), with no object made
for each reply and field. The first group whose bytes are not all in that form (an unset or odd
field, an error reply) is parsed by hiredis from its first byte, and so is everything after it.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any, Protocol

import redis

from rq_exporter_ng import redis_internals

try:
    import hiredis
except ImportError:  # a required dependency, but the pipeline still works without it, only slower
    hiredis = None  # type: ignore[assignment]

_READ_SIZE = 1 << 17
# hiredis moves the unread rest of its buffer to its start each time a reply ends past its first
# 1 kB: fed a whole 128 kB read, ~128 moves of ~64 kB each. Fed 16 kB at a time, ~16 of ~8 kB:
# 15,000 HMGET answers (1.7 MB) parse in 4.9 instead of 6.3 ms (docs/benchmarks.md, session 12).
_FEED = 1 << 14
_MORE = object()  # what the reader gives when no whole reply is left (not False: 0 == False)
NOT_YET = object()  # what ``take_frames`` gives without waiting when a group's bytes are not all here
DIGITS = bytes.maketrans(b"123456789", b"000000000")  # each digit as "0", as ``Packed.frame`` has them


class Framed(Protocol):
    """A group that may be read from its bytes (batch.Packed)."""

    frame: bytes

    def read_frames(self, data: bytes) -> Any: ...


class Replies:
    """Replies as they arrive: each time data comes in, every whole reply in it is parsed in one
    C loop (``iter(gets, _MORE)``), rather than one ``gets()`` call from Python per reply; ``take``
    then slices them out (~170,000 replies a scrape at 10,000 queues). ``framed``: the bytes are
    kept unparsed and taken a group at a time (``take_frames``) until ``parse_the_rest``."""

    __slots__ = ("checked", "counted", "poller", "position", "raw", "raw_at", "reader", "ready", "sock")

    def __init__(self, sock: socket.socket, parse_error: Callable[[str], Exception], framed: bool = False) -> None:
        # Not a method of this object: the reader would hold it in a cycle, freed only by the
        # garbage collector, paused while a scrape runs (its buffers, ~2.5 MB, kept past the read).
        self.counted = _CountedErrors(parse_error)
        self.reader = hiredis.Reader(protocolError=redis_internals.PROTOCOL_ERROR, replyError=self.counted,
                                     notEnoughData=_MORE)
        self.sock = sock
        self.ready: list = []
        self.position = 0
        # framed: the bytes read, not taken yet from raw_at on (appended to, the taken ones dropped
        # now and then: copying what is left at each read cost ~2x the bytes read)
        self.raw: bytearray | None = bytearray() if framed else None
        self.raw_at = 0
        self.checked = 0  # bytes from raw_at found in the form of the group being taken
        self.poller = None
        if hasattr(select, "poll"):  # not on every platform: then replies are only read when waited for
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)

    @property
    def framed(self) -> bool:
        return self.raw is not None

    def have(self) -> int:
        """How many replies are read and not taken yet."""
        return len(self.ready) - self.position

    def poll(self) -> None:
        """Reads what has arrived, without waiting (a TLS record cut in two is waited for)."""
        if self.poller is not None:
            while self.poller.poll(0):
                self._read()

    def take(self, count: int) -> list:
        """The next ``count`` replies."""
        while self.position + count > len(self.ready):
            self._read()
        end = self.position + count
        replies = self.ready[self.position:end]
        self.position = end
        return replies

    @property
    def errors(self) -> int:
        """Error replies read so far: while none, no reply needs looking at."""
        return self.counted.count

    def take_frames(self, group: Framed, count: int, wait: bool) -> Any:
        """``framed``: what ``group.read_frames`` reads from the next ``count`` replies' bytes, taken;
        None when they are not in its form (nothing taken: ``parse_the_rest``); without ``wait``,
        NOT_YET when they are not all here and what is here is in its form.

        Each byte is compared with the form as it arrives. A reply in another form differs from it
        within its own bytes (a missing hash's is shorter, an error's starts with "-"), so a group
        is waited for only while what came may still be it: never for bytes Redis will not send."""
        assert self.raw is not None
        frame = group.frame
        size = len(frame) * count
        while True:
            have = min(len(self.raw) - self.raw_at, size)
            if have > self.checked:
                at, start = self.raw_at, self.checked
                first = start // len(frame)  # the form's repeats that cover [start, have)
                expected = frame * (-(-have // len(frame)) - first)
                offset = start - first * len(frame)
                if self.raw[at + start:at + have].translate(DIGITS) != expected[offset:offset + have - start]:
                    self.checked = 0
                    return None
                self.checked = have
            if have == size:
                read = group.read_frames(bytes(self.raw[self.raw_at:self.raw_at + size]))
                if read is not None:
                    self.raw_at += size
                self.checked = 0
                return read
            if not wait:
                return NOT_YET
            self._read()

    def parse_the_rest(self) -> None:
        """From here on, replies, not bytes: what is read and not taken goes to hiredis first."""
        assert self.raw is not None and self.have() == 0
        rest, self.raw = bytes(self.raw[self.raw_at:]), None
        self._parse(rest)

    def _read(self) -> None:
        data = _receive(self.sock)
        if self.raw is not None:
            if self.raw_at > len(self.raw) // 2:
                del self.raw[:self.raw_at]
                self.raw_at = 0
            self.raw += data
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        ready = self.ready[self.position:]  # the replies taken are let go
        feed, gets, size = self.reader.feed, self.reader.gets, len(data)
        for start in range(0, size, _FEED):
            feed(data, start, min(_FEED, size - start))
            ready.extend(iter(gets, _MORE))
        self.ready, self.position = ready, 0


class _CountedErrors:
    """The reader's error replies as redis-py's exceptions, counted."""

    __slots__ = ("count", "parse")

    def __init__(self, parse: Callable[[str], Exception]) -> None:
        self.parse = parse
        self.count = 0

    def __call__(self, message: str) -> Exception:
        self.count += 1
        return self.parse(message)


class Piped:
    """redis-py's pipeline's replies, handed out as ``Replies`` hands them."""

    errors = True  # any of them may be an exception

    def __init__(self, replies: list) -> None:
        self.replies = replies
        self.position = 0

    def have(self) -> int:
        return len(self.replies) - self.position

    def take(self, count: int) -> list:
        self.position += count
        return self.replies[self.position - count:self.position]


def _receive(sock: socket.socket) -> bytes:
    try:
        data = sock.recv(_READ_SIZE)
    except TimeoutError as error:
        raise redis.TimeoutError("Timeout reading from socket") from error
    except OSError as error:
        raise redis.ConnectionError(f"Error while reading from socket: {error}") from error
    if not data:
        raise redis.ConnectionError("Connection closed by server.")
    return data
