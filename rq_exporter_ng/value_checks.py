"""Checks of single settings' values that need more than their type: a log format that can format
a record, Sentinel's host list, the setting files readable, the Redis TLS files loaded as the
connection will load them.
Each turns what would fail later (at every log line, at every scrape) into a setting's error now."""

from __future__ import annotations

import logging
import os
import ssl
import types
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qsl, urlsplit

from rq_exporter_ng import redis_url


def is_switch(annotation: Any) -> bool:
    """A bool, or a bool that may be left unset (``--shard-globals``): pydantic-settings' implicit
    flags take both as ``--x`` / ``--no-x``, never ``--x VALUE``."""
    if annotation is bool:
        return True
    return isinstance(annotation, types.UnionType) and set(get_args(annotation)) == {bool, type(None)}


def file_problem(path: Path) -> str | None:
    """Why the file cannot be read as one (None when it can): a directory or a FIFO passes
    os.access, then fails or blocks when read."""
    if path.is_file() and os.access(path, os.R_OK):
        return None
    return f"cannot read {path}" + (": not a file" if path.exists() else "")


class BadFile(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def absent_from_secret(path: Path) -> bool:
    """Whether the file is missing from a Kubernetes Secret volume (kubelet's ``..data`` beside it):
    the Secret, mounted optional, lacks the key, as one for a Redis without a password does."""
    return not path.exists() and (path.parent / "..data").is_dir()


def readable_files(files: dict[str, Path | None]) -> None:
    """Each setting's file (None: unset) readable as one, a password file as UTF-8 text too; BadFile
    naming the first that is not. A password file missing from its Secret is no password."""
    for name, path in files.items():
        if path is None or (name == "redis_password_file" and absent_from_secret(path)):
            continue
        problem = file_problem(path)
        if problem:
            raise BadFile(name, problem)
        if name == "redis_password_file":
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise BadFile(name, f"{path} is not UTF-8 text") from None


def log_format(value: str) -> bool:
    """Whether a logging format string formats a record and holds its message. validate=True checks
    the syntax only: a key a record lacks, or %(message)d, would raise at every log line."""
    try:
        logging.Formatter(value, validate=True).format(logging.makeLogRecord({"msg": "m"}))
    except (ValueError, KeyError, TypeError, IndexError):
        return False
    return "%(message)" in value


def sentinel_items(value: str) -> list[tuple[str, int | None]]:
    """--sentinel-host's items as (host, port or None): 'host' or 'host:port', commas between, an
    IPv6 address in brackets, an empty item (a trailing comma) skipped as rq-exporter 3.x's Sentinel
    went past it; ValueError with one line naming a wrong item."""
    items: list[tuple[str, int | None]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        port = None
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"{item!r}: an IPv6 address is [address] or [address]:port")
            port = rest[1:] if rest else None
        elif item.count(":") > 1:
            raise ValueError(f"{item!r}: write an IPv6 address in brackets, as [::1]:26379")
        else:
            host, _, port_text = item.partition(":")
            port = port_text if ":" in item else None
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{item!r}: the port is not a number in 1-65535")
        try:
            redis_url.check_host(host)
        except ValueError:
            raise ValueError(f"{item!r}: not a host name or IP address") from None
        items.append((host, None if port is None else int(port)))
    if not items:
        raise ValueError("names no host: host or host:port items separated by commas")
    return items


def tls_files(ca: Path | None, cert: Path | None, key: Path | None, password: str | None = None) -> None:
    """The Redis TLS files loaded as the connection will load them: a file that is no certificate,
    or a key that is not the certificate's (or encrypted, and ``password`` does not open it), raises
    BadFile naming the setting. Never asks for a pass phrase on the terminal, as OpenSSL would."""
    if ca is None and (cert is None or key is None):
        return
    # Not create_default_context(): the system's CA bundle it loads stayed in memory (~1.7 MB of every
    # exporter's RSS), and only the given files are checked.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError, ValueError) as error:
        raise BadFile("redis_tls_ca_file", f"{ca} holds no CA certificate ({_reason(error)})") from None
    try:
        if cert is not None and key is not None:
            context.load_cert_chain(str(cert), str(key), password=lambda: (password or "").encode())
    except (ssl.SSLError, OSError, ValueError) as error:
        if _encrypted(key) and _reason(error) != "KEY_VALUES_MISMATCH":
            raise BadFile("redis_tls_key_file", f"{key} is encrypted and " + (
                "the URL's ssl_password does not open it" if password else
                "no pass phrase is given: decrypt it, or give it in a rediss:// URL as ssl_password")) from None
        raise BadFile("redis_tls_cert_file", f"{cert} and {key} are no certificate and its key ({_reason(error)})") \
            from None


def _encrypted(key: Path | None) -> bool:
    """A PEM key under a pass phrase (PKCS#8's ENCRYPTED PRIVATE KEY, or OpenSSL's Proc-Type: 4,ENCRYPTED)."""
    try:
        return key is not None and b"ENCRYPTED" in key.read_bytes()[:100_000]
    except OSError:
        return False


def _reason(error: Exception) -> str:
    return getattr(error, "reason", None) or str(error).splitlines()[0]


def url_tls_files(url: str) -> None:
    """A rediss:// URL's ssl_ca_certs, ssl_certfile and ssl_keyfile, checked as the flags' files are
    (BadFile naming redis_url): a file the connection cannot load is an error now, not rq_up 0."""
    query = dict(parse_qsl(urlsplit(url).query))
    files = {name: Path(query[name]) for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile") if name in query}
    for name, path in files.items():
        problem = file_problem(path)
        if problem:
            raise BadFile("redis_url", f"query parameter {name}: {problem}")
    try:
        tls_files(files.get("ssl_ca_certs"), files.get("ssl_certfile"), files.get("ssl_keyfile"),
                  query.get("ssl_password"))
    except BadFile as error:
        raise BadFile("redis_url", f"query parameters: {error.message}") from None
