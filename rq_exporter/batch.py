"""A batch of read commands sent to Redis in one round trip.

Each command comes with the function that takes its reply, so a reader can queue
reads for many queues and workers and handle each answer where it asked for it.
An error reply (a key of the wrong type, say) goes to the error handler instead of
aborting the batch; a lost connection raises and fails the whole scrape (rq_up 0).

At 1,000 queues a batch holds ~14,000 commands, and redis-py's pipeline spends ~10 us
of Python on each. With hiredis installed (the ``fast`` extra) the batch is packed by
hiredis in one go, written on the pooled connection's socket and its replies are read
with a hiredis reader and handed out as they arrive, while Redis is still answering the
rest (bench/run.py measures the difference). Replies are the same objects the pipeline
would give: the same error classes, the client's response callbacks applied.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import redis

try:
    import hiredis
except ImportError:  # the plain pipeline still works, only slower
    hiredis = None

Handler = Callable[[Any], None]
ErrorHandler = Callable[[tuple, Exception], None]

_READ_SIZE = 1 << 17
_SEND_CHUNK = 1000  # commands, ~50 kB


class Batch:
    def __init__(self, on_error: ErrorHandler) -> None:
        self._commands: list[tuple] = []
        self._handlers: list[Handler] = []
        self._on_error = on_error

    def __len__(self) -> int:
        return len(self._commands)

    def add(self, handler: Handler, *command: Any) -> None:
        self._commands.append(command)
        self._handlers.append(handler)

    def run(self, client: redis.Redis) -> None:
        """One round trip; replies are dispatched in order to their handlers."""
        if not self._commands:
            return
        if not (_raw_capable(client) and self._run_raw(client)):
            self._run_pipeline(client)

    def _deliver(self, command: tuple, handler: Handler, reply: Any) -> None:
        if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
            raise reply
        if isinstance(reply, Exception):
            self._on_error(command, reply)
        else:
            handler(reply)

    def _run_pipeline(self, client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for command in self._commands:
            pipe.execute_command(*command)
        replies = pipe.execute(raise_on_error=False)
        for command, handler, reply in zip(self._commands, self._handlers, replies):
            self._deliver(command, handler, reply)

    def _run_raw(self, client: redis.Redis) -> bool:
        """False when the connection has no real socket (fakeredis): nothing was sent then."""
        commands, handlers = self._commands, self._handlers
        callbacks = _callbacks(client, commands)
        pool = client.connection_pool
        try:
            connection = pool.get_connection()
        except TypeError:  # redis-py 5 wants a command name it does not use
            connection = pool.get_connection("PIPELINE")
        sock = getattr(connection, "_sock", None)
        if not isinstance(sock, socket.socket):
            pool.release(connection)
            return False
        try:
            # Packed and sent a chunk at a time: Redis works on one while the next is packed.
            chunks = (b"".join(map(hiredis.pack_command, commands[start:start + _SEND_CHUNK]))
                      for start in range(0, len(commands), _SEND_CHUNK))
            connection.send_packed_command(chunks, check_health=False)
            reader = hiredis.Reader(protocolError=redis.exceptions.InvalidResponse,
                                    replyError=connection._parser.parse_error)
            gets = reader.gets
            index, count = 0, len(commands)
            # Handlers run as replies arrive, while Redis still works on later commands.
            while index < count:
                reply = gets()
                if reply is False:
                    reader.feed(_receive(sock))
                    continue
                if isinstance(reply, Exception):
                    self._deliver(commands[index], handlers[index], reply)
                elif callbacks:
                    callback = callbacks.get(commands[index][0])
                    handlers[index](reply if callback is None else callback(reply))
                else:
                    handlers[index](reply)
                index += 1
        except BaseException:
            # Replies may be left unread: the connection cannot be reused.
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        return True


def _callbacks(client: redis.Redis, commands: list[tuple]) -> dict:
    """redis-py's reply conversions (SMEMBERS -> set, ...) for the command names in the batch."""
    found = {}
    for name in {command[0] for command in commands}:
        callback = client.response_callbacks.get(name.upper() if isinstance(name, str) else name)
        if callback is not None:
            found[name] = callback
    return found


def _receive(sock: socket.socket) -> bytes:
    try:
        data = sock.recv(_READ_SIZE)
    except socket.timeout as error:
        raise redis.TimeoutError("Timeout reading from socket") from error
    except OSError as error:
        raise redis.ConnectionError(f"Error while reading from socket: {error}") from error
    if not data:
        raise redis.ConnectionError("Connection closed by server.")
    return data


def _raw_capable(client: redis.Redis) -> bool:
    """The raw path reads RESP2 bytes itself; anything else goes through redis-py's pipeline."""
    if hiredis is None or not isinstance(client, redis.Redis):
        return False
    kwargs = client.connection_pool.connection_kwargs
    return not kwargs.get("decode_responses") and kwargs.get("protocol") in (None, 2, "2")
