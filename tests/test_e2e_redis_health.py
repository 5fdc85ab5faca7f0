"""End to end, the Redis under RQ: real redis-servers put in each hazard, real RQ enqueues, the real
exporter on each, and one real Prometheus scraping them all with the rules of
prometheus/generate_rules.py (short `for` and windows). The tests of this module run in file order
on one stack:

- 4 MB and allkeys-lru, 4,000 jobs of 2 KB enqueued with RQ's Queue.enqueue: Redis evicts job
  hashes, RQ can no longer fetch those jobs (its queue still lists them), rq_redis_evicted_keys_total
  rises, RQRedisEvictingKeys and RQRedisEvictionPolicyUnsafe fire;
- 4 MB and noeviction: an enqueue fails with OOM, every job enqueued before it is still there,
  nothing is evicted, RQRedisMemoryNearLimit fires and the eviction alerts do not; the exporter
  (no MULTI, unlike RQ's own reads) still reads RQ;
- a BGSAVE into a directory that is gone: RQRedisPersistenceFailing;
- a restart without AOF: the jobs are gone and RQRedisRestartedWithoutAof fires;
- a replica whose master is stopped: RQRedisMasterLinkDown.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jobs
import pytest
import redis
from bundle import queries, substitute, without_data
from e2e_stack import PrometheusApi, short_rules, start_prometheus
from rq import Queue

from devkit import stop_process, wait_for
from support import Exporter, RedisServer, require_tool

pytestmark = [pytest.mark.redis, pytest.mark.promtool, pytest.mark.slow]

LIMIT = ("--maxmemory", "4mb")
JOBS = 4000
ARGUMENT = "x" * 2048
REDIS_ALERTS = ("RQRedisEvictionPolicyUnsafe", "RQRedisEvictingKeys", "RQRedisMemoryNearLimit",
                "RQRedisPersistenceFailing", "RQRedisRestartedWithoutAof", "RQRedisMasterLinkDown")


class Target:
    """A redis-server in one configuration, and the exporter reading it."""

    def __init__(self, *config: str, reads: RedisServer | None = None) -> None:
        self.redis = RedisServer(*config).start()
        self.conn = redis.Redis(port=self.redis.port)
        self.exporter = Exporter("--redis-url", (reads or self.redis).url)

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.exporter.port}"

    def stop(self) -> None:
        self.exporter.stop()
        self.redis.cleanup()


class Stack(PrometheusApi):
    """One exporter per Redis configuration, one Prometheus scraping them all with the short rules."""

    def __init__(self, tmp: Path) -> None:
        require_tool("prometheus")
        self.started = time.time()
        self.targets: dict[str, Target] = {}
        self.master = RedisServer().start()
        self.targets["evicting"] = Target(*LIMIT, "--maxmemory-policy", "allkeys-lru")
        self.targets["full"] = Target(*LIMIT, "--maxmemory-policy", "noeviction")
        self.targets["unsaved"] = Target()
        self.targets["restarted"] = Target()
        self.targets["replica"] = Target("--replicaof", "127.0.0.1", str(self.master.port))
        replica = self.targets["replica"].conn
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up", timeout=30,
                 what="the replica in sync")
        self.prometheus_port, self.prometheus = start_prometheus(
            tmp, [t.instance for t in self.targets.values()], short_rules(tmp))
        wait_for(lambda: self.value('count(rq_redis_info_readable{job="rq"} == 1)') == len(self.targets),
                 timeout=60, interval=0.5, what="Prometheus scraping every exporter, INFO readable")

    def redis_alerts(self, state: str = "firing") -> set[tuple[str, str]]:
        """(alert, target name) of the Redis alerts in that state."""
        names = {t.instance: name for name, t in self.targets.items()}
        return {(a["labels"]["alertname"], names.get(a["labels"].get("instance", ""), "?"))
                for a in self.api("alerts")["alerts"]
                if a["state"] == state and a["labels"]["alertname"] in REDIS_ALERTS}

    def wait_firing(self, expected: set[tuple[str, str]], timeout: float = 60) -> None:
        try:
            wait_for(lambda: expected <= self.redis_alerts(), timeout=timeout, interval=0.5, what=f"{expected} firing")
        except AssertionError:
            raise AssertionError(f"firing: {sorted(self.redis_alerts())}") from None

    def stop(self) -> None:
        stop_process(self.prometheus, 20)
        for target in self.targets.values():
            target.stop()
        self.master.cleanup()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("redis-health"))
    try:
        yield s
    finally:
        s.stop()


def enqueue(conn: redis.Redis, count: int = JOBS) -> tuple[list[str], redis.RedisError | None]:
    """RQ's own enqueue of jobs with 2 KB arguments; the ids enqueued and the error that stopped it."""
    queue = Queue("default", connection=conn)
    ids: list[str] = []
    for _ in range(count):
        try:
            ids.append(queue.enqueue(jobs.sleep_for, ARGUMENT).id)
        except redis.RedisError as error:
            return ids, error
    return ids, None


def job_hashes_left(conn: redis.Redis, ids: list[str]) -> int:
    # Not RQ's Job.fetch_many: under OOM Redis refuses every command inside MULTI, reads included.
    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        pipe.exists(f"rq:job:{job_id}")
    return sum(pipe.execute())


def test_nothing_fires_on_healthy_redises(stack):
    time.sleep(5)  # with `for` 2s, a false alert would have fired by now
    assert stack.redis_alerts() | stack.redis_alerts("pending") == {("RQRedisEvictionPolicyUnsafe", "evicting")}
    assert stack.value('rq_redis_master_link_up{job="rq"}') == 1
    assert stack.value('count(rq_redis_role_info{job="rq", role="replica"})') == 1
    for target in stack.targets.values():
        samples = target.exporter.scrape()
        assert samples.value("rq_redis_evicted_keys_total") == 0 and samples.value("rq_redis_aof_enabled") == 0
        assert not samples.series("rq_exporter_skipped_total")


def test_enqueues_past_the_limit_with_allkeys_lru_lose_jobs_and_fire_the_eviction_alerts(stack):
    target = stack.targets["evicting"]
    before = target.exporter.scrape()
    ids, error = enqueue(target.conn)
    assert error is None and len(ids) == JOBS  # every enqueue "succeeded"
    left = job_hashes_left(target.conn, ids)
    assert left < JOBS // 2, left  # more than half of the jobs are gone ...
    queue = Queue("default", connection=target.conn)
    assert queue.count == JOBS  # ... while RQ's queue still lists them: workers will skip them
    fetched = queue.get_jobs(0, 99)
    assert len(fetched) < 100 and all(job.args == (ARGUMENT,) for job in fetched)  # RQ's own view lost them
    after = target.exporter.scrape()
    evicted = after.value("rq_redis_evicted_keys_total")
    assert before.value("rq_redis_evicted_keys_total") == 0 and evicted >= JOBS - left
    assert after.value("rq_up") == 1
    assert after.value("rq_redis_memory_used_bytes") > 0.9 * after.value("rq_redis_memory_max_bytes")
    stack.wait_firing({("RQRedisEvictingKeys", "evicting"), ("RQRedisEvictionPolicyUnsafe", "evicting"),
                       ("RQRedisMemoryNearLimit", "evicting")})
    # Prometheus' newest sample may still be from a scrape during the enqueues: wait for one after.
    wait_for(lambda: (stack.value(f'rq_redis_evicted_keys_total{{instance="{target.instance}"}}') or 0)
             >= JOBS - left, timeout=30, interval=0.5, what="Prometheus to scrape the evictions")


def test_enqueues_past_the_limit_with_noeviction_fail_with_oom_and_lose_nothing(stack):
    target = stack.targets["full"]
    ids, error = enqueue(target.conn)
    # RQ enqueues in MULTI: redis-py raises the OOM of the queued command, or, when Redis aborted
    # the transaction before any reply named it (seen once under load), EXECABORT. Either way a
    # write on its own now meets the OOM.
    assert isinstance(error, (redis.exceptions.OutOfMemoryError, redis.exceptions.ExecAbortError)), error
    with pytest.raises(redis.exceptions.OutOfMemoryError, match="used memory > 'maxmemory'"):
        target.conn.rpush("rq:exporter-test:probe", "x" * 4096)
    assert 0 < len(ids) < JOBS
    assert job_hashes_left(target.conn, ids) == len(ids)  # every job enqueued before the OOM is kept
    assert target.conn.llen("rq:queue:default") == len(ids)
    samples = target.exporter.scrape()
    assert samples.value("rq_up") == 1  # the exporter's reads are no transaction: Redis still answers them
    assert samples.value("rq_jobs", queue="default", status="queued") == len(ids)
    assert samples.value("rq_redis_evicted_keys_total") == 0
    stack.wait_firing({("RQRedisMemoryNearLimit", "full")})
    time.sleep(3)  # the eviction alerts had the time to fire too: they do not
    firing = stack.redis_alerts() | stack.redis_alerts("pending")
    assert ("RQRedisEvictingKeys", "full") not in firing and ("RQRedisEvictionPolicyUnsafe", "full") not in firing


def test_a_failing_bgsave_fires_persistence_failing(stack):
    target = stack.targets["unsaved"]
    enqueue(target.conn, 10)
    os.rmdir(target.redis.dir)  # Redis works in it: its BGSAVE child cannot write the snapshot
    target.conn.bgsave()
    wait_for(lambda: target.conn.info("persistence")["rdb_last_bgsave_status"] == "err", timeout=20,
             what="the BGSAVE failing")
    assert target.exporter.scrape().value("rq_redis_rdb_last_bgsave_ok") == 0
    stack.wait_firing({("RQRedisPersistenceFailing", "unsaved")})
    failed = {a["labels"].get("failed") for a in stack.api("alerts")["alerts"]
              if a["labels"]["alertname"] == "RQRedisPersistenceFailing"}
    assert failed == {"rdb_bgsave"}


def test_a_restart_without_aof_loses_the_jobs_and_fires_restarted_without_aof(stack):
    target = stack.targets["restarted"]
    ids, _ = enqueue(target.conn, 20)
    instance = f'instance="{target.instance}"'
    wait_for(lambda: (stack.value(f"rq_redis_uptime_seconds{{{instance}}}") or 0) >= 3
             and stack.value(f'rq_jobs{{{instance}, queue="default", status="queued"}}') == 20,
             timeout=30, interval=0.5, what="the jobs and some uptime in Prometheus")
    target.redis.stop()
    target.redis.start()
    assert job_hashes_left(target.conn, ids) == 0  # AOF off, no snapshot: every job is gone
    stack.wait_firing({("RQRedisRestartedWithoutAof", "restarted")})
    assert target.exporter.scrape().value("rq_redis_uptime_seconds") < 60


def test_a_replica_whose_master_stops_fires_master_link_down(stack):
    stack.master.stop()
    wait_for(lambda: stack.targets["replica"].exporter.scrape().value("rq_redis_master_link_up") == 0,
             timeout=30, interval=0.5, what="the replica's master link down")
    stack.wait_firing({("RQRedisMasterLinkDown", "replica")})
    assert stack.targets["replica"].exporter.scrape().value("rq_up") == 1  # the replica itself still answers


def test_every_redis_dashboard_query_has_data(stack):
    exprs = {(title, expr): substitute(expr, rate_interval="15s") for name, title, expr in queries()
             if name == "rq-overview.json" and "rq_redis_" in expr}
    assert len(exprs) >= 12
    missing = without_data(stack.has_data, exprs)
    assert not missing, f"no data for: {missing}"
