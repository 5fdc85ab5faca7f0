"""A Redis URL, checked whole at start: what redis-py would reject only when it connects (a
traceback, or a TypeError on every scrape) or read as something else without a word
(``redis://h/abc`` as db 0, ``redis://h/1/2`` as db 12, ``?ssl_check_hostname=flase`` as true).

The query parameters are those the installed redis-py's ``from_url`` parses
(``URL_QUERY_ARGUMENT_PARSERS``), each held to the form it documents, and a few string
parameters; each must also be one the connection class of the URL's scheme takes.
"""

from __future__ import annotations

import inspect
import ipaddress
import math
import os
import re
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

SCHEMES = ("redis", "rediss", "unix")
HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")
DIGITS = re.compile(r"[0-9]{1,10}")
# redis-py reads any other value as true, even "flase"; and "off" is false in redis-py 8 only.
BOOLEANS = {"1": True, "t": True, "true": True, "y": True, "yes": True,
            "0": False, "f": False, "false": False, "n": False, "no": False}
# Taken as strings by redis-py's connections (protocol too, before redis-py 6 parsed it): any
# other parameter given as a string breaks them.
STRINGS = frozenset({"client_name", "username", "password", "lib_name", "lib_version", "ssl_cert_reqs",
                     "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password", "ssl_ciphers",
                     "protocol"})
FILES = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile"})
SECRETS = frozenset({"password", "ssl_password"})
# The exporter reads raw RESP2 bytes (batch.py): these would change what Redis' replies look like.
REFUSED = {"decode_responses": "the exporter reads replies as bytes",
           "encoding": "the exporter reads replies as bytes",
           "encoding_errors": "the exporter reads replies as bytes",
           "legacy_responses": "the exporter reads RESP2 replies as they are"}
POSITIVE = frozenset({"max_connections", "socket_read_size"})


def check(url: str) -> str:
    """The URL (its scheme lower-cased, as redis-py 5 needs); ValueError with one line that
    never holds a password."""
    if "#" in url:
        # Before parsing: in a password, '#' cuts the URL there, and urllib would then quote the
        # password's first part as a port.
        raise ValueError("has a '#' (percent-encode it as %23 in a password)")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as error:
        # urllib's messages may quote what it took for a port: a password, when '@' is missing.
        raise ValueError("the port is not a number in 1-65535" if "Port" in str(error) else "not a URL") from None
    if parts.scheme not in SCHEMES or not url[len(parts.scheme):].startswith("://"):
        raise ValueError(f"scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
    query = _query(parts.query, parts.scheme)
    if parts.scheme == "unix":
        if parts.hostname or port is not None:
            raise ValueError("a unix:// URL names a socket path and no host: unix:///path/to/redis.sock")
        if parts.path in ("", "/"):
            raise ValueError("no socket path: unix:///path/to/redis.sock")
    else:
        _check_host(parts, port)
        db = _path_db(parts.path)
        if db is not None and "db" in query and int(query["db"]) != db:
            raise ValueError(f"database {db} in the path and db={query['db']} in the query")
    return parts.scheme + url[len(parts.scheme):]


def _check_host(parts: SplitResult, port: int | None) -> None:
    if not parts.hostname:
        raise ValueError(f"no host: {parts.scheme}://HOST:PORT/DB")
    try:
        check_host(parts.hostname)
    except ValueError as error:
        raise ValueError(f"{error}: {parts.hostname[:80]!r}") from None
    if port == 0:
        raise ValueError("port must be 1-65535")


def check_host(host: str) -> str:
    """A host name or an IP address (without brackets); ValueError otherwise."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # All digits and dots is meant as an IPv4 address: 999.1.1.1 is not one, nor a name.
        if not HOST.fullmatch(host) or re.fullmatch(r"[0-9.]+", host):
            raise ValueError("not a host name or IP address") from None
    return host


def _path_db(path: str) -> int | None:
    if path in ("", "/"):
        return None
    if not DIGITS.fullmatch(path[1:]):
        raise ValueError(f"the path must be /DB, a database number (got {path[:40]!r})")
    return int(path[1:])


MAX_SECONDS = 3600.0  # settings.MAX_TIMEOUT (settings imports this module)


def _query(query: str, scheme: str) -> dict[str, str]:
    # Imported here: settings, and so the health check, load without redis-py.
    from redis import connection

    accepted = _accepted(_connection_class(scheme)) | {"max_connections"}
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        where = f"query parameter {name[:40]}"
        if name in found:
            raise ValueError(f"{where}: given twice")
        if name in REFUSED:
            raise ValueError(f"{where}: not allowed ({REFUSED[name]})")
        parser = connection.URL_QUERY_ARGUMENT_PARSERS.get(name)
        if (parser is None and name not in STRINGS) or name not in accepted:
            raise ValueError(f"{where}: not one redis-py takes in a {scheme}:// URL")
        if not value:
            raise ValueError(f"{where}: no value")
        shown = "***" if name in SECRETS else repr(value[:40])
        problem = _value_problem(name, value, parser, connection)
        if problem:
            raise ValueError(f"{where}: {shown} {problem}")
        found[name] = value
    return found


def _value_problem(name: str, value: str, parser, connection) -> str | None:
    """Why redis-py would refuse or misread the value; None when it is good."""
    if name == "protocol":
        return None if value == "2" else "is not 2 (the exporter speaks RESP2)"
    if parser is int:
        if not DIGITS.fullmatch(value):
            return "is not a whole number"
        return "must be at least 1" if name in POSITIVE and int(value) < 1 else None
    if parser is float:
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if not (math.isfinite(number) and number > 0):
            return "must be a positive number of seconds"
        # As --redis-connect-timeout and --redis-read-timeout: far past it redis-py's connect raises OverflowError.
        return None if number <= MAX_SECONDS else f"must be at most {MAX_SECONDS:g} seconds"
    if parser is connection.to_bool:
        return None if value.lower() in BOOLEANS else "is not true or false"
    if parser is list:
        # Older redis-py splits the value into characters, which then break its retries.
        return "is not parsed by the installed redis-py: leave it out"
    if parser is not None:
        try:
            parser(value)
        except (TypeError, ValueError) as error:
            return f"is refused by redis-py: {str(error)[:80]}"
        return None
    if name == "ssl_cert_reqs" and value not in ("none", "optional", "required"):
        return "is not none, optional or required"
    if name in FILES and not os.access(value, os.R_OK):
        return "is not a readable file"
    return None


def _connection_class(scheme: str) -> type:
    from redis import connection

    return {"redis": connection.Connection, "rediss": connection.SSLConnection,
            "unix": connection.UnixDomainSocketConnection}[scheme]


def _accepted(cls: type) -> set[str]:
    """The keyword arguments the connection class takes, through its bases' __init__ while each
    passes **kwargs on."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names - {"self"}


def redact(url: str) -> str:
    """The URL with its password (in the user part or the query) shown as ***."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # Unparseable, so we cannot tell where a password would be: show none of it.
        return "<invalid URL>"
    query = parts.query
    if any(name in SECRETS for name, _ in parse_qsl(query, keep_blank_values=True)):
        query = "&".join(f"{n}=***" if n in SECRETS else part
                         for part in query.split("&") for n in [part.partition("=")[0]])
    if parts.password is None and parts.username is None:
        return url if query == parts.query else urlunsplit(parts._replace(query=query))
    user = quote(parts.username or "", safe="")
    auth = f"{user}:***@" if parts.password is not None else f"{user}@"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = auth + host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
