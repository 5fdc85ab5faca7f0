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
hiredis, written on a pooled connection's socket and its replies are read with a hiredis
reader and handed out as they arrive, while Redis is still answering the rest (bench/run.py
measures the difference): after each chunk sent, those already there, so a handler may run
before the groups after its own are built (none depends on another's replies), and each part
is let go once handed out. Both ways, replies are what Redis sent, with redis-py's error
classes and without its response callbacks (SMEMBERS gives a list, not a set).

Groups whose replies all have one fixed form (``Packed.frame``: job timing's HMGETs of finished
jobs, 15,000 a scrape at 1,000 jobs/s) go on a second pooled connection, sent in the same chunks,
whose replies are read from their bytes (replies.py): ~15 % fewer instructions a timed job than
through hiredis (docs/benchmarks.md, session 15). A pool that gives no second connection
(``max_connections``, Redis' ``maxclients``) sends them with the rest. The first batch that has
such groups opens it (a connect and redis-py's handshake, in the middle of the round); the pool
keeps it for the next.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any, NamedTuple

import redis

from rq_exporter_ng import redis_internals
from rq_exporter_ng.replies import NOT_YET, Piped, Replies, hiredis

Handler = Callable[[Any], None]
GroupHandler = Callable[[list], None]
ErrorHandler = Callable[[tuple, Exception], None]

_SEND_CHUNK = 1000  # commands, ~50 kB
# Pools that could not give a second connection for the framed groups, and when.
_REFUSED: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_REFUSED_FOR = 300.0  # seconds
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

    # The form of each reply, when all of them may come in one form that ``read_frames`` reads from
    # their bytes (replies.py): one reply's bytes with each digit as "0". Such groups are sent on a
    # connection of their own (one for the batch), whose replies are read as bytes until a group's
    # are not all in that form. Empty: read by hiredis.
    frame = b""

    def __init__(self) -> None:
        self._built: Sequence[tuple] | None = None

    def read_frames(self, data: bytes) -> Any:
        """What the handler takes, read from the group's replies' bytes (``len(frame)`` each, each
        digit found where ``frame`` has "0"); None when they are not what hiredis would read as
        the handler takes them (hiredis reads them then). Must agree with the handler given hiredis' replies."""
        return None

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
        self._last: list[Callable[[], None]] = []  # add_last's builds
        self._sent: deque[Sent] = deque()  # built and sent, waiting for their replies
        self._on_error = on_error
        self._quiet = False  # of the pairs of the last _Groups handed out
        self._framed: Replies | None = None  # the replies of the framed groups' connection, while it runs
        # Every part is built and the last chunk is on its way (or sent): a handler whose work can
        # wait (job timing's verdicts) does it from then on, so that it does not hold back the
        # sending while Redis runs out of commands.
        self.sent = False

    def __bool__(self) -> bool:
        return bool(self._pending or self._last)

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

    def add_last(self, build: Callable[[], None]) -> None:
        """``build()`` adds more parts, called once every other part of the round is built (those
        that ``add_later`` builds add included): many reads whose answers are no use early go
        after the few whose answers are (job timing's HMGETs after exception classes' streams)."""
        self._last.append(build)

    def run(self, client: redis.Redis) -> None:
        """One round trip; replies are handed out in order."""
        if not self:
            return
        try:
            if not (_raw_capable(client) and self._run_raw(client)):
                self._run_pipeline(client)
        finally:
            self._pending, self._last = [], []
            self._sent.clear()

    def _all_in_order(self) -> Iterator[Sequence[tuple]]:
        """``_commands_in_order``, then ``add_last``'s, in the order they were added."""
        yield from self._commands_in_order()
        while self._last:
            self._last.pop(0)()
            yield from self._commands_in_order()

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
        for commands in self._all_in_order():
            for command in commands:
                pipe.execute_command(*command)
        replies = pipe.execute(raise_on_error=False)
        self.sent = True
        self._dispatch(Piped(replies))

    def _dispatch(self, replies_in: Piped | Replies, wait: bool = True) -> None:
        """Hands each part sent its replies, in order, and lets it go. Without ``wait``, only the
        parts whose replies are all read already: the rest wait for a later call."""
        sent, on_error, framed = self._sent, self._on_error, self._framed
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
            source = replies_in
            if framed is not None and isinstance(part_commands, Packed) and part_commands.frame:
                source = framed  # sent on the framed groups' connection (_chunks)
                if framed.framed:
                    read = framed.take_frames(part_commands, count, wait)
                    if read is NOT_YET:
                        return
                    if read is not None:
                        sent.popleft()
                        handler(read)
                        continue
                    framed.parse_the_rest()  # not in their form: hiredis reads them, and all after
            if not wait and source.have() < count:
                return
            sent.popleft()
            replies = source.take(count)
            # Looked for only once an error reply has come (~15 ms a scrape at 10,000 queues otherwise).
            if source.errors and any(map(isinstance, replies, repeat(Exception))):
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
        borrowed = [connection]

        def open_framed() -> bool:
            """A second connection for the framed groups, when the pool gives one. One it could not
            give (max_connections, maxclients, a timeout) is not asked for again for a while: the
            groups go with the rest meanwhile."""
            refused = _REFUSED.get(pool)
            if refused is not None and time.monotonic() - refused < _REFUSED_FOR:
                return False
            try:
                other = redis_internals.borrow(pool)
            except redis.RedisError:
                _REFUSED[pool] = time.monotonic()
                return False
            borrowed.append(other)
            other_sock = redis_internals.raw_socket(other)
            if other_sock is None:
                return False
            self._framed = Replies(other_sock, redis_internals.error_parser(other), framed=True)
            return True

        try:
            replies = Replies(sock, redis_internals.error_parser(connection))
            for chunk, framed_chunk in self._chunks(open_framed):
                if chunk:
                    redis_internals.send(connection, (chunk,))
                if framed_chunk:
                    redis_internals.send(borrowed[1], (framed_chunk,))
                # Replies already here go to their handlers while the rest is sent, and their parts
                # with them: a round's handlers and commands are not all held until the last is sent
                # (~12 MB at 10,000 queues, job timing's mostly).
                replies.poll()
                if self._framed is not None:
                    self._framed.poll()
                self._dispatch(replies, wait=False)
            # Then the rest as they arrive, while Redis still works on later commands.
            self._dispatch(replies)
        except BaseException:
            # Replies may be left unread: the connections cannot be reused.
            for each in borrowed:
                each.disconnect()
            raise
        finally:
            self._framed = None
            for each in borrowed:
                pool.release(each)
        return True

    def _chunks(self, open_framed: Callable[[], bool]) -> Iterator[tuple[bytes, bytes]]:
        """The batch in RESP, a chunk at a time: Redis works on one while the next is built. Each
        chunk in two: for the batch's connection, and for the framed groups' (``open_framed`` once
        the first comes; when it cannot, they go with the rest)."""
        pack = hiredis.pack_command
        pending: list[bytes] = []
        framed: list[bytes] = []
        framing: bool | None = None  # not asked yet
        count = 0
        for commands in self._all_in_order():
            if isinstance(commands, Packed):
                if commands.frame and framing is None:
                    framing = open_framed()
                (framed if framing and commands.frame else pending).append(commands.packed())
            else:
                pending.extend(map(pack, commands))
            count += len(commands)
            if count >= _SEND_CHUNK:
                yield b"".join(pending), b"".join(framed)
                pending, framed, count = [], [], 0
        self.sent = True  # every part is built: the chunk below, if any, is the last
        if pending or framed:
            yield b"".join(pending), b"".join(framed)


def _raw_capable(client: redis.Redis) -> bool:
    """The raw path reads bytes in RESP2 (connection.PROTOCOL) itself; anything else goes through
    redis-py's pipeline."""
    if hiredis is None or not isinstance(client, redis.Redis):
        return False
    kwargs = client.connection_pool.connection_kwargs
    return not kwargs.get("decode_responses") and kwargs.get("protocol") in (2, "2")
