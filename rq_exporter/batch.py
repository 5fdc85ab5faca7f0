"""A batch of read commands sent to Redis in one round trip.

Each command comes with the function that takes its reply, so a reader can queue
reads for many queues and workers and handle each answer where it asked for it.
An error reply (a key of the wrong type, say) goes to the error handler instead of
aborting the batch; a lost connection raises and fails the whole scrape (rq_up 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

Handler = Callable[[Any], None]
ErrorHandler = Callable[[tuple, Exception], None]


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
        pipe = client.pipeline(transaction=False)
        for command in self._commands:
            pipe.execute_command(*command)
        replies = pipe.execute(raise_on_error=False)
        for command, handler, reply in zip(self._commands, self._handlers, replies):
            if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
                raise reply
            if isinstance(reply, Exception):
                self._on_error(command, reply)
            else:
                handler(reply)
