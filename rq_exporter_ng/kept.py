"""A value worked out once per key and kept between scrapes: what comes back scrape after scrape
(queue and worker names' escaped text, head jobs' timestamps) is not worked out again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Kept(dict[K, V], Generic[K, V]):
    """key -> ``make(key)``; a hit is a plain dict look-up, with no Python call. Emptied once it
    holds ``limit`` keys (keys that come and go). What ``make`` raises is raised again each time,
    not kept. Shared by concurrent scrapes: one that finds a key gone makes it again."""

    def __init__(self, make: Callable[[K], V], limit: int) -> None:
        super().__init__()
        self.make = make
        self.limit = limit

    def __missing__(self, key: K) -> V:
        value = self.make(key)
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
