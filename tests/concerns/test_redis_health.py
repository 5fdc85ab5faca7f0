"""The Redis under RQ (rq_exporter_ng/concerns/redis_health.py): INFO parsed by a pure function, its families, and
the one INFO riding in round 1 of a real redis-server, refused to an ACL user without +info.
The hazards themselves (evictions, OOM, failing saves, restarts, a replica cut off) with real RQ
enqueues and a real Prometheus: tests/test_e2e_redis_health.py."""

from __future__ import annotations

import logging
import time

import pytest
from concern_scrape import rows_of, scrape_concern
from test_readonly import ACL_RULE

from devkit import rq_time
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.concerns.redis_health import RedisHealth, RedisHealthOptions, RedisInfo, families, parse_info
from rq_exporter_ng.connection import connect
from rq_exporter_ng.families.catalogue import BY_NAME
from rq_exporter_ng.keys import Keys
from rq_exporter_ng.reader import read_snapshot
from rq_exporter_ng.settings import Settings

RUN_ID = "a2f41c7e5238a113875ee808c5243b51e1d14a97"
# A replica's INFO as Redis 7.0 writes it (the fields read, among others), with CRLF line ends.
REPLICA = "\r\n".join([
    "# Server", "redis_version:7.0.15", "redis_mode:standalone", f"run_id:{RUN_ID}", "uptime_in_seconds:86400",
    "", "# Memory", "used_memory:3145728", "used_memory_human:3.00M", "maxmemory:4194304",
    "maxmemory_human:4.00M", "maxmemory_policy:allkeys-lru",
    "", "# Persistence", "loading:0", "rdb_changes_since_last_save:42", "rdb_bgsave_in_progress:0",
    "rdb_last_save_time:1796400000", "rdb_last_bgsave_status:err", "aof_enabled:1", "aof_last_write_status:ok",
    "", "# Stats", "expired_keys:7", "evicted_keys:2102",
    "", "# Replication", "role:slave", "master_host:10.0.0.1", "master_port:6379", "master_link_status:down",
    "", "# Keyspace", "db0:keys=10,expires=0,avg_ttl=0", "",
]).encode()


def test_every_field_of_a_replicas_info():
    info = parse_info(REPLICA)
    assert info == RedisInfo(readable=True, policy="allkeys-lru", used_memory=3145728, max_memory=4194304,
                             evicted_keys=2102, aof_enabled=True, aof_last_write_ok=True, rdb_last_bgsave_ok=False,
                             rdb_last_save=1796400000, rdb_changes=42, role="replica", master_link_up=False,
                             uptime=86400, version="7.0.15", run_id=RUN_ID)
    rows = rows_of(families(info))
    assert rows["rq_redis_role_info"] == {("replica",): 1}  # "slave" as Redis >= 5 also calls it
    assert rows["rq_redis_master_link_up"] == {(): 0}
    assert rows["rq_redis_maxmemory_policy_info"] == {("allkeys-lru",): 1}
    assert rows["rq_redis_evicted_keys"] == {(): 2102}
    assert rows["rq_redis_rdb_last_bgsave_ok"] == {(): 0} and rows["rq_redis_aof_last_write_ok"] == {(): 1}
    assert rows["rq_redis_rdb_last_save_timestamp_seconds"] == {(): 1796400000}
    assert rows["rq_redis_server_info"] == {("7.0.15", RUN_ID): 1}
    assert rows["rq_redis_info_readable"] == {(): 1}


def test_every_family_is_catalogued_and_every_catalogued_rq_redis_metric_comes_out():
    names = set()
    for family in families(parse_info(REPLICA)):
        spec = BY_NAME[family.name] if family.name in BY_NAME else BY_NAME[family.name + "_total"]
        assert family.type == spec.type and family.documentation == spec.help and family.labels == spec.labels
        names.add(spec.name)
    assert names == {name for name in BY_NAME if name.startswith("rq_redis_")}


def test_a_master_has_no_master_link_and_an_old_redis_leaves_missing_fields_out():
    old = b"# Server\nredis_version:2.8.24\nrun_id:" + RUN_ID.encode() + b"\n# Memory\nused_memory:1000\nrole:master\n"
    info = parse_info(old + b"master_link_status:up\n")  # a stray field on a master means nothing
    assert info.master_link_up is None and info.role == "master"
    rows = rows_of(families(info))
    assert rows["rq_redis_master_link_up"] == {} and rows["rq_redis_maxmemory_policy_info"] == {}
    assert rows["rq_redis_memory_max_bytes"] == {} and rows["rq_redis_memory_used_bytes"] == {(): 1000}
    assert not info.problems


def test_malformed_fields_are_skipped_as_problems_and_the_rest_is_read():
    info = parse_info("\n".join([
        "used_memory:lots", "maxmemory:-1", "evicted_keys:12", "aof_enabled:yes", "rdb_last_bgsave_status:maybe",
        "maxmemory_policy:Drop Everything {now}", "role:" + "x" * 100, "run_id:not-hex", "redis_version:7 \"beta\"",
        "rdb_last_save_time:1796400000.5", "uptime_in_seconds:10", "no colon here", ":", "weird:line:with:colons",
    ]))
    assert {p.key for p in info.problems} == {f"INFO {name}" for name in (
        "used_memory", "maxmemory", "aof_enabled", "rdb_last_bgsave_status", "maxmemory_policy", "role", "run_id",
        "redis_version", "rdb_last_save_time")}
    assert {p.reason for p in info.problems} == {"bad_info_field"}
    assert all(len(p.detail) < 200 for p in info.problems)
    assert info.evicted_keys == 12 and info.uptime == 10 and info.used_memory is None and info.policy is None
    rows = rows_of(families(info))
    assert rows["rq_redis_server_info"] == {}  # no version that parses: no series with a bogus label
    assert rows["rq_redis_role_info"] == {}


def test_unreadable_info_says_so_and_leaves_the_rest_out():
    rows = rows_of(families(RedisInfo(readable=False)))
    assert rows.pop("rq_redis_info_readable") == {(): 0}
    assert all(value == {} for value in rows.values())


@pytest.mark.redis
def test_info_rides_in_round_one_of_a_real_redis(redis_db):
    client = redis_db.client()
    client.config_set("maxmemory", "64mb")
    client.config_set("maxmemory-policy", "volatile-lru")
    try:
        client.sadd("rq:queues", "rq:queue:default")
        client.rpush("rq:queue:default", "job-1")
        keys = Keys("rq")
        without = read_snapshot(client, keys).round_trips
        snapshot, info = scrape_concern(client, RedisHealth(RedisHealthOptions(redis_db.url), keys), keys)
        assert snapshot.round_trips == without
        assert info.readable and not info.problems
        assert info.policy == "volatile-lru" and info.max_memory == 64 * 1024 * 1024
        assert info.role == "master" and info.master_link_up is None and info.aof_enabled is False
        assert info.version == client.info("server")["redis_version"] and len(info.run_id or "") == 40
        assert info.used_memory and info.used_memory > 0 and info.evicted_keys == 0
    finally:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "noeviction")


@pytest.mark.redis
def test_without_info_permission_rq_is_read_the_redis_part_left_out_and_logged_once(own_redis, caplog):
    admin = own_redis.client()
    # The README's read-only rule without +info (tests/test_readonly.py runs the real exporter so).
    rule = ACL_RULE.replace(" +info", "").replace(">PASSWORD", ">pw").split()
    admin.execute_command("ACL", "SETUSER", "no-info", *rule[2:])
    admin.sadd("rq:queues", "rq:queue:default")
    admin.rpush("rq:queue:default", "job-1")
    admin.hset("rq:job:job-1", mapping={"enqueued_at": rq_time(time.time()), "status": "queued"})
    settings = Settings(redis_url=f"redis://no-info:pw@127.0.0.1:{own_redis.port}/0", job_timing=False)
    collector = RQCollector(connect(settings), settings)

    def scrape() -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in collector.collect() for s in f.samples}

    with caplog.at_level(logging.INFO, logger="rq_exporter"):
        for _ in range(3):
            samples = scrape()
            assert samples[("rq_up", ())] == 1
            assert samples[("rq_jobs", (("queue", "default"), ("status", "queued")))] == 1
            assert samples[("rq_redis_info_readable", ())] == 0
            assert not [name for name, _ in samples if name.startswith("rq_redis_") and name != "rq_redis_info_readable"]
            assert not [name for name, _ in samples if name == "rq_exporter_skipped_total"]  # a refusal is no skip
        assert [r.message for r in caplog.records if "INFO" in r.message and r.levelno == logging.WARNING] == [
            f"INFO failed on Redis at redis://no-info:***@127.0.0.1:{own_redis.port}/0 (an ACL user needs +info: "
            "README, A read-only Redis user); the rq_redis_* metrics of memory, evictions, persistence and "
            "replication are left out, RQ's are not"]
        admin.execute_command("ACL", "SETUSER", "no-info", "+info")
        samples = scrape()
        assert samples[("rq_redis_info_readable", ())] == 1 and samples[("rq_redis_memory_used_bytes", ())] > 0
        assert any("INFO works again" in r.message for r in caplog.records)
