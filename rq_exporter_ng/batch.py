"""A batch of read commands sent to Redis in one round trip.

Commands come alone, each with the function that takes its reply, or in groups whose
function takes the list of their replies: a reader queues the 13 reads of one queue as
one group, so that a 1,000-queue scrape calls 1,000 functions rather than 13,000.
An error reply (a key of the wrong type, say) goes to the error handler: a lone command's
function is then not called, a group gets None in its place. A quiet group's errors are not
reported (job timing re-reads keys whose errors the core reads report already). A lost
connection raises and fails the whole scrape (rq_up 0).

At 1,000 queues a batch holds ~17,000 commands, and redis-py's pipeline spends ~10 us
of Python on each. With hiredis (a required dependency) the batch is packed by
hiredis, written on the pooled connection's socket and its replies are read with a hiredis
reader and handed out as they arrive, while Redis is still answering the rest (bench/run.py
measures the difference): after each chunk sent, those already there, so a handler may run
before the groups after its own are built (none depends on another's replies), and each part
is let go once handed out. Both ways, replies are what Redis sent, with redis-py's error
classes and without its response callbacks (SMEMBERS gives a list, not a set).
"""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import redis

from rq_exporter_ng import redis_internals

try:
    import hiredis
except ImportError:  # a required dependency, but the pipeline still works without it, only slower
    hiredis = None  # type: ignore[assignment]

Handler = Callable[[Any], None]
GroupHandler = Callable[[list], None]
ErrorHandler = Callable[[tuple, Exception], None]

_READ_SIZE = 1 << 17
# hiredis moves the unread rest of its buffer to its start each time a reply ends past its first
# 1 kB: fed a whole 128 kB read, ~128 moves of ~64 kB each. Fed 16 kB at a time, ~16 of ~8 kB:
# 15,000 HMGET answers (1.7 MB) parse in 4.9 instead of 6.3 ms (docs/benchmarks.md, session 12).
_FEED = 1 << 14
_SEND_CHUNK = 1000  # commands, ~50 kB
_LOST = (redis.ConnectionError, redis.TimeoutError)


class Part(NamedTuple):
    """One command and the function that takes its reply, or a group and the function that takes
    the list of their replies."""

    handler: Callable
    commands: Sequence[tuple]
    group: bool
    quiet: bool  # its error replies are not reported (None in their place all the same)


class Packed(Sequence[tuple]):
    """A group of commands that packs itself in one go (packing.py packs a queue's 13 reads from one
    template: ~2 us instead of ~6 us a queue), when the batch sends it; the bytes are not kept.
    The command tuples are built only when something asks: the command of an error reply,
    redis-py's pipeline (no hiredis). ``packed()`` must equal hiredis' packing of ``commands()``."""

    __slots__ = ("_built",)

    def __init__(self) -> None:
        self._built: Sequence[tuple] | None = None

    def packed(self) -> bytes:
        raise NotImplementedError

    def commands(self) -> Sequence[tuple]:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: Any) -> Any:  # an int or a slice, as any Sequence
        if self._built is None:
            self._built = self.commands()
        return self._built[index]


class _Groups:
    """The groups of one ``add_groups``: built only as the batch is sent."""

    __slots__ = ("quiet", "source")

    def __init__(self, source: Iterable[tuple[GroupHandler, Sequence[tuple]]], quiet: bool) -> None:
        self.source = source
        self.quiet = quiet


class _Later:
    """Parts that ``build`` adds once the batch is sent up to here (``add_later``)."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[], None]) -> None:
        self.build = build


# What waits for its replies, in order: a lone command's or a group's Part, or a _Groups and then
# the (handler, commands) pairs it built, kept as they came (a tuple more each would be ~2 MB at
# 10,000 queues).
Sent = Part | _Groups | tuple[GroupHandler, Sequence[tuple]]


class Batch:
    """One round trip, run once: each part is dropped as soon as its handler has its replies (at
    10,000 queues a round's handlers and commands are ~10 MB, and the next round is read meanwhile)."""

    def __init__(self, on_error: ErrorHandler) -> None:
        self._pending: list[Part | _Groups | _Later] = []  # in order
        self._sent: deque[Sent] = deque()  # built and sent, waiting for their replies
        self._on_error = on_error
        self._quiet = False  # of the pairs of the last _Groups handed out

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, handler: Handler, *command: Any) -> None:
        self._pending.append(Part(handler, (command,), False, False))

    def add_group(self, handler: GroupHandler, commands: Sequence[tuple], quiet: bool = False) -> None:
        """``handler`` gets the replies to ``commands``, in order, in one list."""
        self._pending.append(Part(handler, commands, True, quiet))

    def add_groups(self, groups: Iterable[tuple[GroupHandler, Sequence[tuple]]], quiet: bool = False) -> None:
        """Many ``add_group``; a generator is built only as the batch is sent, so Redis already
        works on the first groups while the next ones are built (~7 ms at 1,000 queues)."""
        self._pending.append(_Groups(groups, quiet))

    def add_later(self, build: Callable[[], None]) -> None:
        """``build()`` adds more parts, called when the parts before are sent (and some of their
        replies handed out): Redis works on those while it runs, instead of waiting for it."""
        self._pending.append(_Later(build))

    def run(self, client: redis.Redis) -> None:
        """One round trip; replies are handed out in order."""
        if not self._pending:
            return
        try:
            if not (_raw_capable(client) and self._run_raw(client)):
                self._run_pipeline(client)
        finally:
            self._pending = []
            self._sent.clear()

    def _commands_in_order(self) -> Iterator[Sequence[tuple]]:
        """Each part's commands, built if deferred; the part waits in ``_sent`` for its replies."""
        sent = self._sent
        pending, self._pending = self._pending, []  # the groups' sources go once built
        for item in pending:
            if isinstance(item, _Later):
                item.build()  # adds to self._pending, sent here, in order
                yield from self._commands_in_order()
                continue
            sent.append(item)
            if isinstance(item, Part):
                yield item.commands
                continue
            for pair in item.source:
                sent.append(pair)
                yield pair[1]

    def _run_pipeline(self, client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        redis_internals.plain_replies(pipe)
        for commands in self._commands_in_order():
            for command in commands:
                pipe.execute_command(*command)
        self._dispatch(_Piped(pipe.execute(raise_on_error=False)))

    def _dispatch(self, replies_in: _Piped | _Replies, wait: bool = True) -> None:
        """Hands each part sent its replies, in order, and lets it go. Without ``wait``, only the
        parts whose replies are all read already: the rest wait for a later call."""
        sent, on_error, take = self._sent, self._on_error, replies_in.take
        while sent:
            item = sent[0]
            if isinstance(item, _Groups):
                self._quiet = item.quiet  # of the pairs that follow
                sent.popleft()
                continue
            if isinstance(item, Part):
                handler, part_commands, group, quiet = item
            else:
                (handler, part_commands), group, quiet = item, True, self._quiet
            count = len(part_commands)  # once: a packed group's len() is a Python call
            if not wait and replies_in.have() < count:
                return
            sent.popleft()
            replies = take(count)
            # Looked for only once an error reply has come (~15 ms a scrape at 10,000 queues otherwise).
            if replies_in.errors and any(map(isinstance, replies, repeat(Exception))):
                for i, reply in enumerate(replies):
                    if isinstance(reply, Exception):
                        if isinstance(reply, _LOST):
                            raise reply
                        if not quiet:
                            on_error(part_commands[i], reply)
                        replies[i] = None
                if not group and replies[0] is None:
                    continue
            handler(replies if group else replies[0])

    def _run_raw(self, client: redis.Redis) -> bool:
        """False when the connection has no real socket (fakeredis): nothing was sent then."""
        pool = client.connection_pool
        connection = redis_internals.borrow(pool)
        sock = redis_internals.raw_socket(connection)
        if sock is None:
            pool.release(connection)
            return False
        try:
            replies = _Replies(sock, redis_internals.error_parser(connection))
            for chunk in self._chunks():
                redis_internals.send(connection, (chunk,))
                # Replies already here go to their handlers while the rest is sent, and their parts
                # with them: a round's handlers and commands are not all held until the last is sent
                # (~12 MB at 10,000 queues, job timing's mostly).
                replies.poll()
                self._dispatch(replies, wait=False)
            # Then the rest as they arrive, while Redis still works on later commands.
            self._dispatch(replies)
        except BaseException:
            # Replies may be left unread: the connection cannot be reused.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        return True

    def _chunks(self) -> Iterator[bytes]:
        """The batch in RESP, a chunk at a time: Redis works on one while the next is built."""
        pack = hiredis.pack_command
        pending: list[bytes] = []
        count = 0
        for commands in self._commands_in_order():
            if isinstance(commands, Packed):
                pending.append(commands.packed())
            else:
                pending.extend(map(pack, commands))
            count += len(commands)
            if count >= _SEND_CHUNK:
                yield b"".join(pending)
                pending, count = [], 0
        if pending:
            yield b"".join(pending)


_MORE = object()  # what the reader gives when no whole reply is left (not False: 0 == False)


class _Replies:
    """Replies as they arrive: each time data comes in, every whole reply in it is parsed in one
    C loop (``iter(gets, _MORE)``), rather than one ``gets()`` call from Python per reply; ``take``
    then slices them out (~170,000 replies a scrape at 10,000 queues)."""

    __slots__ = ("counted", "poller", "position", "reader", "ready", "sock")

    def __init__(self, sock: socket.socket, parse_error: Callable[[str], Exception]) -> None:
        # Not a method of this object: the reader would hold it in a cycle, freed only by the
        # garbage collector, paused while a scrape runs (its buffers, ~2.5 MB, kept past the read).
        self.counted = _CountedErrors(parse_error)
        self.reader = hiredis.Reader(protocolError=redis_internals.PROTOCOL_ERROR, replyError=self.counted,
                                     notEnoughData=_MORE)
        self.sock = sock
        self.ready: list = []
        self.position = 0
        self.poller = None
        if hasattr(select, "poll"):  # not on every platform: then replies are only read when waited for
            self.poller = select.poll()
            self.poller.register(sock, select.POLLIN)

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

    def _read(self) -> None:
        ready = self.ready[self.position:]  # the replies taken are let go
        data = _receive(self.sock)
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


class _Piped:
    """redis-py's pipeline's replies, handed out as ``_Replies`` hands them."""

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


def _raw_capable(client: redis.Redis) -> bool:
    """The raw path reads bytes in RESP2 (connection.PROTOCOL) itself; anything else goes through
    redis-py's pipeline."""
    if hiredis is None or not isinstance(client, redis.Redis):
        return False
    kwargs = client.connection_pool.connection_kwargs
    return not kwargs.get("decode_responses") and kwargs.get("protocol") in (2, "2")
