"""The exporter-toolkit web config file: TLS and basic auth for the HTTP endpoint.

The same YAML Prometheus' own exporters take with ``--web.config.file``::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_ca_file: ca.crt                       # optional: client certificates
      client_auth_type: RequireAndVerifyClientCert # optional
      min_version: TLS12                           # optional
      cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # optional, Go's names (TLS 1.2)
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}   # optional
    basic_auth_users:
      prometheus: $2b$12$...                       # bcrypt hash

Relative paths are relative to the file, as in exporter-toolkit. Unknown keys are errors
(exporter-toolkit parses strictly too), so a typo never silently turns security off; so are its
keys that Python's ssl module cannot honour (NOT_SUPPORTED), rather than ignored.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from rq_exporter_ng import yamlfile

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
# exporter-toolkit takes these too; OpenSSL 3's default security level serves no cipher for them.
OLD_TLS = {"TLS10", "TLS11"}
# Go's names of the cipher suites exporter-toolkit takes (crypto/tls CipherSuites()), as OpenSSL
# names them. TLS 1.3's are not chosen in either (Go and OpenSSL both enable all three).
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
            "cipher_suites", "prefer_server_cipher_suites"}
# exporter-toolkit's response headers, and the values it allows where it checks them.
HEADERS = {"Content-Security-Policy": None, "X-Frame-Options": {"deny", "sameorigin"},
           "X-Content-Type-Options": {"nosniff"}, "X-XSS-Protection": None, "Strict-Transport-Security": None}
HTTP_KEYS = {"http2", "headers"}
TOP_KEYS = {"tls_server_config", "http_server_config", "basic_auth_users"}
# exporter-toolkit's keys this exporter refuses rather than ignores: each would leave the endpoint
# less guarded, or other, than the file says.
NOT_SUPPORTED = {
    "curve_preferences": "Python's ssl module sets no list of curves",
    "client_allowed_sans": "not supported: restrict the client CA instead",
    "cert": "inline certificates are not supported: give cert_file",
    "key": "inline keys are not supported: give key_file",
    "client_ca": "an inline CA is not supported: give client_ca_file",
    "rate_limit": "not supported: put a rate limit in front of the exporter",
}
log = logging.getLogger("rq_exporter")



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
    ciphers: tuple[str, ...] = ()  # OpenSSL's names (TLS 1.2 and below); empty: OpenSSL's defaults
    prefer_server_ciphers: bool = True  # exporter-toolkit's default
    headers: tuple[tuple[str, str], ...] = ()  # added to every response

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
        if self.ciphers:
            context.set_ciphers(":".join(self.ciphers))
        if self.prefer_server_ciphers:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
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
    http = raw.get("http_server_config") or {}
    if not isinstance(http, dict):
        raise WebConfigError("http_server_config: must be a mapping")
    _no_unknown(http, HTTP_KEYS, "http_server_config.")

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
        if isinstance(version, str) and version in OLD_TLS:
            raise WebConfigError(f"tls_server_config.{version_key}: {version} is not served (OpenSSL's security "
                                 "level gives TLS 1.0 and 1.1 no cipher): TLS12 or TLS13")
        if version is not None and (not isinstance(version, str) or version not in TLS_VERSIONS):
            known = ", ".join(TLS_VERSIONS)
            raise WebConfigError(f"tls_server_config.{version_key}: {version!r} is not one of {known}")
    low, high = tls.get("min_version") or "TLS12", tls.get("max_version") or "TLS13"  # the defaults
    if TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        raise WebConfigError(f"tls_server_config: min_version {low} is above max_version {high}: no client could "
                             "connect")

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
    prefer = _switch(tls, "prefer_server_cipher_suites", "tls_server_config")
    return WebConfig(cert, key, ca, auth_type, tls.get("min_version"), tls.get("max_version"), users,
                     _ciphers(tls.get("cipher_suites")), prefer, _headers(http))


def _ciphers(names: object) -> tuple[str, ...]:
    if names is None:
        return ()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise WebConfigError("tls_server_config.cipher_suites: must be a list of Go's cipher suite names")
    unknown = [n for n in names if n not in CIPHER_SUITES]
    if unknown:
        raise WebConfigError(f"tls_server_config.cipher_suites: {unknown[0]!r} is not one of "
                             f"{', '.join(CIPHER_SUITES)}")
    return tuple(filter(None, (CIPHER_SUITES[n] for n in names)))


def _switch(mapping: dict, key: str, where: str) -> bool:
    value = mapping.get(key, True)
    if not isinstance(value, bool):
        raise WebConfigError(f"{where}.{key}: must be true or false, got {value!r}")
    return value


def _headers(http: dict) -> tuple[tuple[str, str], ...]:
    _switch(http, "http2", "http_server_config")  # served as HTTP/1.1 either way, which Prometheus speaks
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise WebConfigError("http_server_config.headers: must be a mapping of header to value")
    found = []
    for name, value in headers.items():
        where = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            raise WebConfigError(f"{where}: not a header exporter-toolkit sets (one of {', '.join(HEADERS)})")
        if value in (None, ""):
            continue  # unset, as exporter-toolkit reads a blank
        allowed = HEADERS[name]
        if not isinstance(value, str) or "\n" in value or "\r" in value or (
                allowed is not None and value.lower() not in allowed):
            raise WebConfigError(f"{where}: {value!r} is not " + (
                f"one of {', '.join(sorted(allowed))}" if allowed else "a header value"))
        found.append((name, value))
    return tuple(found)


def _no_unknown(mapping: dict, known: set[str], where: str) -> None:
    for key in mapping:
        if key in NOT_SUPPORTED:
            raise WebConfigError(f"{where}{key}: {NOT_SUPPORTED[key]}")
        if key not in known:
            raise WebConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")


def _is_bcrypt(value: str) -> bool:
    try:
        bcrypt.checkpw(b"", value.encode())
    except ValueError:
        return False
    return True
