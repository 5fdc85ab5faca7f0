"""Concurrent callers share one call in flight: several Prometheus replicas scraping at once
cost one Redis read, not one each.

Nothing is cached: a caller that arrives after a call finished starts a new one, so a
result is never older than the scrape that asked for it (a caller that joins gets the
read that was running when it arrived).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: _Call[T] | None = None

    def run(self, function: Callable[[], T]) -> T:
        with self._lock:
            current = self._current
            leader = current is None
            call: _Call[T] = current if current is not None else _Call()
            self._current = call
        if not leader:
            call.done.wait()
        else:
            try:
                call.result = function()
            except BaseException as error:
                call.error = error
            finally:
                with self._lock:
                    self._current = None
                call.done.set()
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]
