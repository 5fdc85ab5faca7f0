"""The endpoint's guard, as the web config file asks (webconfig.py reads it): basic auth with
bcrypt hashes, and the response headers of its http_server_config."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Iterable

import bcrypt

from rq_exporter_ng.web.server import WsgiApp
from rq_exporter_ng.web.webconfig import WebConfig

# Paths that answer without credentials: a liveness probe must not need the scrape password,
# and /healthz tells nothing about Redis.
OPEN_PATHS = frozenset({"/healthz", "/-/healthy"})
# Successful checks remembered so that a scrape every few seconds does not pay bcrypt's cost
# (tens of ms by design) each time; bounded so that a flood of passwords cannot grow it.
CACHE_SIZE = 256
BCRYPT_MAX = 72  # bytes of a password bcrypt uses


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, in time independent of the user."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        # Unknown users are checked against this, so a wrong name costs as long as a wrong password.
        self._dummy = bcrypt.hashpw(b"unused", bcrypt.gensalt(rounds=_rounds(users)))
        self._key = secrets.token_bytes(32)  # per-process key of the cache below
        self._verified: dict[bytes, None] = {}
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.new(self._key, user.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
        with self._lock:
            cached = any(hmac.compare_digest(token, known) for known in self._verified)
        if cached:
            return True
        hashed = self._users.get(user)
        secret = password.encode()
        if len(secret) > BCRYPT_MAX:
            # bcrypt reads 72 bytes at most (the bcrypt package refuses more, as Go's does):
            # such a password never matches; the dummy check keeps the time the same.
            bcrypt.checkpw(b"", self._dummy)
            return False
        ok = bcrypt.checkpw(secret, hashed if hashed is not None else self._dummy)
        if ok and hashed is not None:
            with self._lock:
                if len(self._verified) >= CACHE_SIZE:
                    self._verified.pop(next(iter(self._verified)))
                self._verified[token] = None
            return True
        return False


def _rounds(users: dict[str, bytes]) -> int:
    for hashed in users.values():
        try:
            return int(hashed.split(b"$")[2])
        except (IndexError, ValueError):
            pass
    return 10


def _credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def protect(app: WsgiApp, config: WebConfig) -> WsgiApp:
    """``app`` behind basic auth when the config has users (401 + WWW-Authenticate otherwise), with
    the config's headers on every response."""
    if config.headers:
        app = _with_headers(app, list(config.headers))
    if not config.users:
        return app
    auth = BasicAuth(config.users)

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in OPEN_PATHS or auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("WWW-Authenticate", 'Basic realm="rq-exporter", charset="UTF-8"'),
            *config.headers,
        ])
        return [b"Unauthorized\n"]

    return guarded


def _with_headers(app: WsgiApp, headers: list[tuple[str, str]]) -> WsgiApp:
    def with_headers(environ: dict, start_response: Callable) -> Iterable[bytes]:
        def start(status: str, response_headers: list, exc_info=None):
            return start_response(status, [*response_headers, *headers], exc_info)
        return app(environ, start)
    return with_headers
