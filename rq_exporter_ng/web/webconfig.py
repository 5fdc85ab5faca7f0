"""The exporter-toolkit web config file: TLS and basic auth for the HTTP endpoint.

The same YAML Prometheus' own exporters take with ``--web.config.file``::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_ca_file: ca.crt                       # optional: client certificates
      client_auth_type: RequireAndVerifyClientCert # optional
      min_version: TLS12                           # optional
    basic_auth_users:
      prometheus: $2b$12$...                       # bcrypt hash

Relative paths are relative to the file, as in exporter-toolkit. Unknown keys are errors
(exporter-toolkit parses strictly too), so a typo never silently turns security off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from rq_exporter_ng import yamlfile
from rq_exporter_ng.web.server import WsgiApp

# Python's ssl module cannot accept a client certificate without verifying it, so the two
# exporter-toolkit modes that do that (RequestClientCert, RequireAnyClientCert) are refused.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
TOP_KEYS = {"tls_server_config", "basic_auth_users"}
log = logging.getLogger("rq_exporter")

# Paths that answer without credentials: a liveness probe must not need the scrape password,
# and /healthz tells nothing about Redis.
OPEN_PATHS = frozenset({"/healthz", "/-/healthy"})
# Successful checks remembered so that a scrape every few seconds does not pay bcrypt's cost
# (tens of ms by design) each time; bounded so that a flood of passwords cannot grow it.
CACHE_SIZE = 256
BCRYPT_MAX = 72  # bytes of a password bcrypt uses


class WebConfigError(ValueError):
    """The web config file is wrong; the message is one line."""


@dataclass(frozen=True)
class WebConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str | None = None
    max_version: str | None = None
    users: dict[str, bytes] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.cert_file is not None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context, or None for plain HTTP. Raises WebConfigError."""
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version or "TLS12"]
        if self.max_version:
            context.maximum_version = TLS_VERSIONS[self.max_version]
        try:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as error:
            raise WebConfigError(f"tls_server_config.cert_file/key_file: cannot load: {_reason(error)}") from None
        if self.client_ca_file:
            try:
                context.load_verify_locations(cafile=str(self.client_ca_file))
            except (OSError, ssl.SSLError) as error:
                raise WebConfigError(f"tls_server_config.client_ca_file: cannot load: {_reason(error)}") from None
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        return context


class TlsContexts:
    """The server's TLS context, rebuilt when its certificate, key or CA file changes.

    Called for every new connection (a few stat calls), so renewed certificates (cert-manager,
    a Kubernetes Secret update) are served without a restart. A half-replaced pair that does
    not load keeps the previous context until the files change again."""

    def __init__(self, config: WebConfig) -> None:
        self._config = config
        self._files = [p for p in (config.cert_file, config.key_file, config.client_ca_file) if p is not None]
        self._stamp = self._stamps()
        context = config.ssl_context()
        if context is None:
            raise WebConfigError("tls_server_config: no certificate")
        self._context = context
        self._lock = threading.Lock()

    def _stamps(self) -> tuple:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._files:
            try:
                stat = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(stamps)

    def __call__(self) -> ssl.SSLContext:
        stamp = self._stamps()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self._context = self._config.ssl_context() or self._context
                    except WebConfigError as error:
                        log.warning("--web-config-file: keeping the previous TLS certificate: %s", error)
                    else:
                        log.info("--web-config-file: TLS certificate files changed, reloaded")
        return self._context


def _reason(error: Exception) -> str:
    return getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)


def load(path: Path) -> WebConfig:
    """Parse and check the file (certificates included). Raises WebConfigError naming the key."""
    config = parse(yamlfile.read(path, WebConfigError) or {}, path.parent)
    config.ssl_context()  # load the certificates now: a bad one fails at start, not at the first scrape
    return config


def parse(raw: object, base: Path) -> WebConfig:
    if not isinstance(raw, dict):
        raise WebConfigError("must be a mapping with tls_server_config and/or basic_auth_users")
    _no_unknown(raw, TOP_KEYS, "")
    tls = raw.get("tls_server_config") or {}
    if not isinstance(tls, dict):
        raise WebConfigError("tls_server_config: must be a mapping")
    _no_unknown(tls, TLS_KEYS, "tls_server_config.")

    def path_of(key: str) -> Path | None:
        value = tls.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise WebConfigError(f"tls_server_config.{key}: must be a path")
        path = base / Path(value).expanduser()
        if not path.is_file():
            raise WebConfigError(f"tls_server_config.{key}: no such file {path}")
        return path

    cert, key, ca = path_of("cert_file"), path_of("key_file"), path_of("client_ca_file")
    if tls and (cert is None or key is None):
        raise WebConfigError("tls_server_config: cert_file and key_file are both required")
    auth_type = tls.get("client_auth_type") or ("RequireAndVerifyClientCert" if ca else "NoClientCert")
    if not isinstance(auth_type, str) or auth_type not in CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {auth_type!r} is not supported (one of {', '.join(CLIENT_AUTH)})"
        )
    if CLIENT_AUTH[auth_type] != ssl.CERT_NONE and ca is None:
        raise WebConfigError(f"tls_server_config.client_ca_file: required with client_auth_type {auth_type}")
    for version_key in ("min_version", "max_version"):
        version = tls.get(version_key)
        if version is not None and (not isinstance(version, str) or version not in TLS_VERSIONS):
            known = ", ".join(TLS_VERSIONS)
            raise WebConfigError(f"tls_server_config.{version_key}: {version!r} is not one of {known}")
    versions = [TLS_VERSIONS[tls[k]] for k in ("min_version", "max_version") if tls.get(k) is not None]
    if len(versions) == 2 and versions[0] > versions[1]:
        raise WebConfigError(f"tls_server_config: min_version {tls['min_version']} is above max_version "
                             f"{tls['max_version']}: no client could connect")

    users_raw = raw.get("basic_auth_users") or {}
    if not isinstance(users_raw, dict):
        raise WebConfigError("basic_auth_users: must be a mapping of user name to bcrypt hash")
    users: dict[str, bytes] = {}
    for user, hashed in users_raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise WebConfigError(f"basic_auth_users: {user!r} is not a valid user name")
        if not isinstance(hashed, str) or not _is_bcrypt(hashed):
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash (generate one with htpasswd -nBC 10)")
        users[user] = hashed.encode()
    return WebConfig(cert, key, ca, auth_type, tls.get("min_version"), tls.get("max_version"), users)


def _no_unknown(mapping: dict, known: set[str], where: str) -> None:
    for key in mapping:
        if key not in known:
            raise WebConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")


def _is_bcrypt(value: str) -> bool:
    try:
        bcrypt.checkpw(b"", value.encode())
    except ValueError:
        return False
    return True


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


def guard(app: WsgiApp, config: WebConfig) -> WsgiApp:
    """``app`` behind basic auth when the config has users (401 + WWW-Authenticate otherwise)."""
    if not config.users:
        return app
    auth = BasicAuth(config.users)

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in OPEN_PATHS or auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        start_response("401 Unauthorized", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("WWW-Authenticate", 'Basic realm="rq-exporter", charset="UTF-8"'),
        ])
        return [b"Unauthorized\n"]

    return guarded
