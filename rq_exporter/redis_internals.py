"""Every use of redis-py beyond its documented API, in one place: batch.py's raw path.

The raw path sends a scrape's ~17,000 commands on a pooled connection's socket itself and reads
the replies with hiredis, a fraction of the pipeline's cost per command. Each use below is
marked PRIVATE with what it relies on; tests/test_batch.py checks that the raw path and the
pipeline give the same replies, on the oldest (constraints/minimums.txt) and newest redis-py
that CI installs. Where one of them is missing, ``raw_socket`` says so and the batch takes the
pipeline.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import redis
from redis.connection import ConnectionPool


def borrow(pool: ConnectionPool) -> Any:
    """A connection from the pool. PRIVATE: redis-py 5 wants a command name it does not use."""
    try:
        return pool.get_connection()
    except TypeError:
        return pool.get_connection("PIPELINE")


def raw_socket(connection: Any) -> socket.socket | None:
    """The socket of a connection from ``borrow`` (the pool connects it). PRIVATE:
    ``Connection._sock``. None for connections without a real socket (fakeredis)."""
    sock = getattr(connection, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def send(connection: Any, chunks: Any) -> None:
    """Writes packed commands. PRIVATE: ``check_health=False`` skips the PING redis-py may send first."""
    connection.send_packed_command(chunks, check_health=False)


def error_parser(connection: Any) -> Callable[[str], Exception]:
    """Turns an error reply into redis-py's exception (WRONGTYPE -> ResponseError, ...).
    PRIVATE: the connection's parser's ``parse_error``."""
    return connection._parser.parse_error


PROTOCOL_ERROR = redis.exceptions.InvalidResponse


def plain_replies(pipeline: Any) -> None:
    """Replies as Redis sent them, as on the raw path. PRIVATE: the pipeline's callback table."""
    pipeline.response_callbacks = {}
