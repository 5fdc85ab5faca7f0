"""Every use of redis-py beyond its documented API, in one place: batch.py's raw path, and the
TLS connection without Python 3.13's strict X.509 flag for redis-py that cannot leave it out.

The raw path sends a scrape's ~17,000 commands on a pooled connection's socket itself and reads
the replies with hiredis, a fraction of the pipeline's cost per command. Each use below is
marked PRIVATE with what it relies on; tests/test_batch.py checks that the raw path and the
pipeline give the same replies, on the oldest (constraints/minimums.txt) and newest redis-py
that CI installs. Where one of them is missing, ``raw_socket`` says so and the batch takes the
pipeline.
"""

from __future__ import annotations

import inspect
import socket
import ssl
from collections.abc import Callable
from typing import Any

import redis
from redis.connection import Connection, ConnectionPool, SSLConnection
from redis.sentinel import SentinelManagedSSLConnection


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


def takes_verify_flags() -> bool:
    """Whether redis-py's SSLConnection takes ssl_exclude_verify_flags (redis-py 5.0 does not)."""
    return "ssl_exclude_verify_flags" in inspect.signature(SSLConnection.__init__).parameters


class _WithoutX509Strict:
    """SSLConnection's TLS wrap with VERIFY_X509_STRICT left out. PRIVATE: overrides ``_connect``
    (redis-py 5 to 8: Connection._connect opens the TCP socket, SSLConnection._connect wraps it)
    and reads SSLConnection's attributes for the CA, client certificate and verification mode."""

    def _connect(self) -> ssl.SSLSocket:
        this: Any = self
        sock = Connection._connect(this)
        try:
            context = ssl.create_default_context()
            context.verify_flags &= ~ssl.VERIFY_X509_STRICT
            context.check_hostname = this.check_hostname
            context.verify_mode = this.cert_reqs
            if this.certfile or this.keyfile:
                context.load_cert_chain(this.certfile, this.keyfile, this.certificate_password)
            if this.ca_certs is not None or this.ca_path is not None or this.ca_data is not None:
                context.load_verify_locations(this.ca_certs, this.ca_path, this.ca_data)
            return context.wrap_socket(sock, server_hostname=this.host)
        except BaseException:
            sock.close()
            raise


class _SSLConnectionWithoutX509Strict(_WithoutX509Strict, SSLConnection):
    pass


class _SentinelSSLConnectionWithoutX509Strict(_WithoutX509Strict, SentinelManagedSSLConnection):
    pass


def relaxed_ssl_connection(sentinel: bool) -> type:
    return _SentinelSSLConnectionWithoutX509Strict if sentinel else _SSLConnectionWithoutX509Strict
