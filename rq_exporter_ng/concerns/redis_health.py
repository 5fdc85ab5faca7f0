"""The Redis under RQ: what in Redis itself loses RQ's jobs without RQ noticing, from one ``INFO``.

RQ keeps every job, queue and registry in Redis and never checks that Redis keeps them:

- with any ``maxmemory-policy`` but ``noeviction`` (managed services often default to
  ``volatile-lru``), Redis deletes keys under memory pressure: job hashes, queue lists, registry
  entries, worker hashes; jobs vanish from ``rq_jobs`` and nothing fails (rq/rq#1280);
- with ``noeviction`` at the limit, every write fails with OOM: enqueues raise;
- a restart without AOF loses what was written since the last RDB snapshot, a failing BGSAVE or
  AOF write loses more at the next restart, and a replica whose master link is down serves
  stale data to an exporter reading it.

One plain ``INFO`` (its default sections: server, memory, persistence, stats, replication, ...;
every Redis version answers it, ~5 kB) rides in round 1, so a scrape keeps its round trips. Its
metrics are ``rq_redis_*``, never ``redis_*``, so they do not collide with redis_exporter's
series when both scrape the same Redis.

``INFO`` is in the ACL categories ``@slow @dangerous``, not ``@read``: a read-only user needs
``+info``. A user without it still gets every RQ metric with ``rq_up 1``: the command's error
reply leaves the Redis part out (``rq_redis_info_readable 0``), logged once when it starts
failing and once when it works again, never a failed scrape nor a skip counted every scrape.
A field that does not parse is left out, counted in ``rq_exporter_skipped_total{reason=
"bad_info_field"}`` and logged once; a field Redis does not have (an old version) is left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric

from rq_exporter_ng import parse
from rq_exporter_ng.batch import Batch
from rq_exporter_ng.concern import Concern, Given, Reads
from rq_exporter_ng.connection import redacted_target
from rq_exporter_ng.families.table import Row, table
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.settings import Settings
from rq_exporter_ng.snapshot import Problem

log = logging.getLogger("rq_exporter")

# Label values come from Redis: bounded shapes only, so that a strange server cannot blow up
# the series count (anything else is a malformed field).
_TOKEN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,32}")
_RUN_ID = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class RedisInfo:
    """What one ``INFO`` says; None: not in the reply (or malformed, with a problem)."""

    readable: bool = False
    policy: str | None = None
    used_memory: int | None = None
    max_memory: int | None = None  # 0: no limit
    evicted_keys: int | None = None
    aof_enabled: bool | None = None
    aof_last_write_ok: bool | None = None
    rdb_last_bgsave_ok: bool | None = None
    rdb_last_save: int | None = None  # epoch seconds
    rdb_changes: int | None = None
    role: str | None = None  # master or replica (Redis' older "slave")
    master_link_up: bool | None = None  # replicas only
    uptime: int | None = None
    version: str | None = None
    run_id: str | None = None
    problems: tuple[Problem, ...] = ()


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("negative")
    return number


def _flag(value: str) -> bool:
    if value not in ("0", "1"):
        raise ValueError("not 0 or 1")
    return value == "1"


def _status(value: str) -> bool:
    if value not in ("ok", "err"):
        raise ValueError("not ok or err")
    return value == "ok"


def _link(value: str) -> bool:
    if value not in ("up", "down"):
        raise ValueError("not up or down")
    return value == "up"


def _matching(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError("unexpected value")
        return value
    return check


def _role(value: str) -> str:
    return "replica" if value == "slave" else _matching(_TOKEN)(value)


# INFO field -> (RedisInfo field, parser raising ValueError).
FIELDS: dict[str, tuple[str, Callable[[str], object]]] = {
    "redis_version": ("version", _matching(_VERSION)),
    "run_id": ("run_id", _matching(_RUN_ID)),
    "uptime_in_seconds": ("uptime", _count),
    "used_memory": ("used_memory", _count),
    "maxmemory": ("max_memory", _count),
    "maxmemory_policy": ("policy", _matching(_TOKEN)),
    "rdb_changes_since_last_save": ("rdb_changes", _count),
    "rdb_last_save_time": ("rdb_last_save", _count),
    "rdb_last_bgsave_status": ("rdb_last_bgsave_ok", _status),
    "aof_enabled": ("aof_enabled", _flag),
    "aof_last_write_status": ("aof_last_write_ok", _status),
    "evicted_keys": ("evicted_keys", _count),
    "role": ("role", _role),
    "master_link_status": ("master_link_up", _link),
}


def parse_info(reply: bytes | str) -> RedisInfo:
    """An ``INFO`` reply ("# Section" headers, "field:value" lines) -> RedisInfo."""
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for line in parse.text(reply).splitlines():
        name, colon, value = line.partition(":")
        wanted = FIELDS.get(name) if colon else None
        if wanted is None:
            continue
        field, parser = wanted
        try:
            values[field] = parser(value.strip())
        except ValueError as error:
            problems.append(Problem("bad_info_field", f"INFO {name}", f"{name}:{value[:60]!r}: {error}"))
    if values.get("role") != "replica":
        values.pop("master_link_up", None)  # a master has no master link; a stray field means nothing
    return RedisInfo(readable=True, problems=tuple(problems), **values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RedisHealthOptions:
    target: str  # where the exporter reads, for the log (one exporter may read many: /probe)


class RedisHealth(Concern[RedisHealthOptions, "RedisHealthReads", RedisInfo]):
    """One INFO a scrape (not in a shard that leaves the global series to another). Remembers only
    whether INFO failed, to log it once."""

    @classmethod
    def options(cls, settings: Settings) -> RedisHealthOptions | None:
        # Its families are global (catalogue scope): one exporter of a sharded set reads them.
        return RedisHealthOptions(redacted_target(settings)) if settings.exports_globals else None

    def __init__(self, options: RedisHealthOptions, keys: Keys) -> None:
        self.target = options.target
        self.failing = False

    def reads(self, given: Given) -> RedisHealthReads:
        return RedisHealthReads(self)

    def families(self, result: RedisInfo) -> Iterator[Metric]:
        return families(result)


class RedisHealthReads(Reads[RedisInfo]):
    def __init__(self, concern: RedisHealth) -> None:
        self.concern = concern
        self.reply: object = None

    def first(self, batch: Batch) -> None:
        # Quiet: an error reply (NOPERM for a user without +info, a proxy that refuses INFO) is no
        # skipped Redis entry to count every scrape; it becomes rq_redis_info_readable 0.
        batch.add_group(self._take, [("INFO",)], quiet=True)

    def _take(self, replies: list) -> None:
        self.reply = replies[0]

    def result(self, given: Given) -> RedisInfo:
        if isinstance(self.reply, (bytes, str)):
            if self.concern.failing:
                log.info("INFO works again on Redis at %s: the rq_redis_* metrics are back", self.concern.target)
                self.concern.failing = False
            return parse_info(self.reply)
        if not self.concern.failing:
            log.warning("INFO failed on Redis at %s (an ACL user needs +info: README, A read-only Redis user); the "
                        "rq_redis_* metrics of memory, evictions, persistence and replication are left out, RQ's are "
                        "not", self.concern.target)
            self.concern.failing = True
        return RedisInfo(readable=False)


def _number(value: bool | int | None) -> float | None:
    return None if value is None else float(value)


def families(info: RedisInfo) -> Iterator[Metric]:
    yield table("rq_redis_info_readable", [((), 1 if info.readable else 0)])
    one = {
        "rq_redis_memory_used_bytes": info.used_memory,
        "rq_redis_memory_max_bytes": info.max_memory,
        "rq_redis_evicted_keys_total": info.evicted_keys,
        "rq_redis_aof_enabled": info.aof_enabled,
        "rq_redis_aof_last_write_ok": info.aof_last_write_ok,
        "rq_redis_rdb_last_bgsave_ok": info.rdb_last_bgsave_ok,
        "rq_redis_rdb_last_save_timestamp_seconds": info.rdb_last_save,
        "rq_redis_rdb_changes_since_last_save": info.rdb_changes,
        "rq_redis_master_link_up": info.master_link_up,
        "rq_redis_uptime_seconds": info.uptime,
    }
    for name, value in one.items():
        number = _number(value)
        yield table(name, [] if number is None else [((), number)])
    yield table("rq_redis_maxmemory_policy_info", [] if info.policy is None else [((info.policy,), 1)])
    yield table("rq_redis_role_info", [] if info.role is None else [((info.role,), 1)])
    server: list[Row] = [((info.version, info.run_id or ""), 1.0)] if info.version is not None else []
    yield table("rq_redis_server_info", server)
