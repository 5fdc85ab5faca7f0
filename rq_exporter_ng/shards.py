"""Which shard of a sharded set owns a queue (``--shard i/N``; README, Running at scale)."""

from __future__ import annotations

import re
import zlib

SHARD = re.compile(r"(\d+)/(\d+)", re.ASCII)


def parse(value: str) -> tuple[int, int]:
    """'i/N' -> (i, N), 0 <= i < N; ValueError otherwise."""
    found = SHARD.fullmatch(value.strip())
    if not found or not 0 <= int(found[1]) < int(found[2]):
        raise ValueError("'i/N': whole numbers with 0 <= i < N, such as 0/3, 1/3, 2/3")
    return int(found[1]), int(found[2])


def shard_of(queue: str, count: int) -> int:
    """The shard (0 to count - 1) owning the queue: CRC-32 of its UTF-8 name, stable across processes,
    hosts and Python versions (Python's hash() of a str is salted per process), mod count."""
    return zlib.crc32(queue.encode("utf-8", "surrogatepass")) % count
