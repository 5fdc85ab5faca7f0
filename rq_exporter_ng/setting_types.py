"""The kinds of value a setting holds, each with how it is read and checked on its own.

settings.py declares the fields with these types; what needs two settings at once is checked
there. A check raises ValueError, which loading.py turns into the one line naming the setting.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, SecretStr
from pydantic_settings import NoDecode

from rq_exporter_ng import redis_url, shards, value_checks


def _unset_if_empty(value: object) -> object:
    # `--sentinel-host ""` is no Sentinel, an empty file setting no file (Path("") would be ".").
    return None if value == "" else value


def _refused_if_empty(value: object) -> object:
    # Not unset as the others: an empty web config path (a template's value left out) would serve
    # without its TLS and basic auth, an empty targets path without its targets.
    if value == "":
        raise ValueError("given empty: name the file, or leave the setting out")
    return value


def _items(value: object) -> object:
    """'a, b' or ['a', 'b,c'] -> ('a', 'b', 'c'); anything else as it is, for pydantic to judge."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(part.strip() for v in value for part in v.split(",") if part.strip())
    return value


def _url(value: str | None) -> str | None:
    return None if value is None else redis_url.check(value)


def _host(value: str | None) -> str | None:
    # Empty: every address (--host), or unset (--redis-host).
    return value if not value else redis_url.check_host(value)


def _key_prefix(value: str) -> str:
    # The same rule RQ 3.0 applies to RQ_KEY_PREFIX.
    if not all(c.isalnum() or c in "_.:{}-" for c in value):
        raise ValueError("only letters, digits and _ . : - { } are allowed")
    return value


def _some_pattern(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("names no pattern, so no queue would be exported ('*' for every queue)")
    return value


def _sentinels(value: str | None) -> str | None:
    if value is not None:
        value_checks.sentinel_items(value)
    return value


def _shard(value: str | None) -> str | None:
    if value is None:
        return None
    index, count = shards.parse(value)
    return f"{index}/{count}"


def _buckets(value: tuple[float, ...]) -> tuple[float, ...]:
    if not value:
        raise ValueError("at least one bucket bound is needed")
    if any(not math.isfinite(v) or v <= 0 for v in value):
        raise ValueError("bucket bounds must be positive numbers")
    if any(b <= a for a, b in pairwise(value)):
        raise ValueError("bucket bounds must increase")
    return value


def _ttls(value: tuple[int, ...]) -> tuple[int, ...]:
    if any(v <= 0 for v in value):
        raise ValueError("TTLs are positive whole seconds")
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _log_format(value: str) -> str:
    if value in ("text", "json") or value_checks.log_format(value):
        return value
    raise ValueError("text, json or a logging format string with %(message)s")


# Settings that may be left unset, where "" is unset too (Docker's `-e X=`, a Helm value left empty).
MaybeText = Annotated[str | None, BeforeValidator(_unset_if_empty)]
MaybeSecret = Annotated[SecretStr | None, BeforeValidator(_unset_if_empty)]
MaybeFile = Annotated[Path | None, BeforeValidator(_unset_if_empty)]
# A file that is optional, but refused when given empty rather than taken as unset.
NamedFile = Annotated[Path | None, BeforeValidator(_refused_if_empty)]

RedisUrl = Annotated[str | None, BeforeValidator(_unset_if_empty), AfterValidator(_url)]
ListenHost = Annotated[str, AfterValidator(_host)]
RedisHost = Annotated[str | None, BeforeValidator(_unset_if_empty), AfterValidator(_host)]
SentinelHosts = Annotated[str | None, BeforeValidator(_unset_if_empty), AfterValidator(_sentinels)]
KeyPrefix = Annotated[str, AfterValidator(_key_prefix)]
Shard = Annotated[str | None, AfterValidator(_shard)]

# Comma-separated on the command line and in variables, tuples in the model: parsed once, here.
# NoDecode: pydantic-settings would otherwise read a tuple's variable as JSON.
Patterns = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_items)]
Included = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_items), AfterValidator(_some_pattern)]
Buckets = Annotated[tuple[float, ...], NoDecode, BeforeValidator(_items), AfterValidator(_buckets)]
Ttls = Annotated[tuple[int, ...], NoDecode, BeforeValidator(_items), AfterValidator(_ttls)]

LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)]
LogFormat = Annotated[str, AfterValidator(_log_format)]
