"""Faults and load against the real exporter process and a real redis-server on loopback:
concurrent scrapes share one read; Redis killed, restarted, slow, dropping connections; no
thread, file descriptor or Redis connection leaks; memory flat over 10,000 scrapes."""

from __future__ import annotations

import os
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultproxy import FaultProxy
from prometheus_client import CollectorRegistry, generate_latest
from rq import Queue

from devkit import proc_status, wait_for
from rq_exporter_ng.collector import RQCollector
from rq_exporter_ng.connection import connect
from rq_exporter_ng.settings import Settings
from support import Exporter, RedisServer, parse_samples

pytestmark = pytest.mark.redis

TIMEOUT = 0.5  # --redis-connect-timeout and --redis-read-timeout of these tests
# A scrape makes at most 3 round trips: connect + 3 reads, plus HTTP and Python overhead.
SCRAPE_BOUND = TIMEOUT + 3 * TIMEOUT + 1.0


def _exporter(url: str) -> Exporter:
    return Exporter("--redis-url", url, "--redis-connect-timeout", str(TIMEOUT),
                    "--redis-read-timeout", str(TIMEOUT))


def _threads(pid: int) -> int:
    return proc_status(pid, "Threads")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _exporter_clients(server: RedisServer) -> int:
    """Connections to Redis other than the one asking."""
    client = server.client()
    try:
        return len(client.client_list()) - 1
    finally:
        client.close()


def _timed_scrape(exporter: Exporter) -> tuple[float, float]:
    start = time.monotonic()
    samples = exporter.scrape(timeout=10)
    return samples.value("rq_up"), time.monotonic() - start


def _all_down_in_time(exporter: Exporter, one_by_one: int, at_once: int) -> None:
    """Scrapes one after another, then concurrently: each answers rq_up 0 within the bound."""
    for _ in range(one_by_one):
        up, took = _timed_scrape(exporter)
        assert up == 0 and took < SCRAPE_BOUND
    with ThreadPoolExecutor(at_once) as pool:
        for up, took in pool.map(lambda _: _timed_scrape(exporter), range(at_once)):
            assert up == 0 and took < SCRAPE_BOUND


def _settled(exporter: Exporter, threads: int, fds: int) -> bool:
    """Threads and descriptors back to the baseline (handler threads end just after answering)."""
    pid = exporter.process.pid
    return _threads(pid) <= threads and _fds(pid) <= fds


def _fill(server: RedisServer, queues: int = 3, jobs: int = 2) -> None:
    client = server.client()
    for i in range(queues):
        queue = Queue(f"q{i}", connection=client)
        for _ in range(jobs):
            queue.enqueue("jobs.sleep_for", 0)
    client.close()


def test_twenty_concurrent_scrapes_share_one_redis_read(redis_db):
    _fill(redis_db)
    proxy = FaultProxy(redis_db.port)
    # Each reply is held 0.5 s, so one read (3 round trips) takes about 1.5 s: the 20
    # scrapes below all arrive while it is in flight.
    redis_db.client().config_resetstat()
    exporter = Exporter("--redis-url", proxy.url, "--redis-read-timeout", "3")
    try:
        # The exporter's start-up check reads once in the background: let it finish first.
        wait_for(lambda: redis_db.client().info("commandstats").get("cmdstat_smembers", {}).get("calls", 0) >= 2,
                 what="the start-up read")
        exporter.scrape()
        proxy.set("delay", 0.5)
        stats = redis_db.client().info("commandstats")
        before = stats["cmdstat_smembers"]["calls"]
        barrier = threading.Barrier(20)

        def one(_):
            barrier.wait()
            with urllib.request.urlopen(exporter.base + "/metrics", timeout=15) as response:
                return parse_samples(response.read().decode())

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(one, range(20)))
        after = redis_db.client().info("commandstats")["cmdstat_smembers"]["calls"]
        # One read: SMEMBERS of the queue set, the worker set and RQ 3.0's rate limit keys.
        assert after - before == 3
        assert {r.value("rq_up") for r in results} == {1}
        assert {r.value("rq_exporter_scrapes_total") for r in results} == {2}  # the same read
        assert {r.value("rq_jobs", queue="q0", status="queued") for r in results} == {2}

        # Nothing is cached: the next scrape reads again and sees what changed meanwhile.
        proxy.set("pass")
        Queue("q0", connection=redis_db.client()).enqueue("jobs.sleep_for", 0)
        fresh = exporter.scrape()
        assert fresh.value("rq_exporter_scrapes_total") == 3
        assert fresh.value("rq_jobs", queue="q0", status="queued") == 3
        assert redis_db.client().info("commandstats")["cmdstat_smembers"]["calls"] - after == 3
    finally:
        exporter.stop()
        proxy.stop()


def test_redis_killed_and_restarted(own_redis):
    _fill(own_redis)
    exporter = _exporter(own_redis.url)
    pid = exporter.process.pid
    try:
        assert exporter.scrape().value("rq_up") == 1
        threads, fds = _threads(pid), _fds(pid)
        own_redis.process.kill()  # SIGKILL: no goodbye to the clients
        own_redis.process.wait()
        # Then scrapes at once while Redis is down: all answered, none hangs.
        _all_down_in_time(exporter, one_by_one=20, at_once=10)
        wait_for(lambda: _settled(exporter, threads, fds), timeout=5, what="threads and fds back to baseline")

        own_redis.start()  # same port, fresh and empty
        _fill(own_redis)
        # Recovers by itself: the first scrape may still meet the dead connection.
        wait_for(lambda: exporter.scrape().value("rq_up") == 1, timeout=5, interval=0.1, what="rq_up 1 again")
        samples = exporter.scrape()
        assert samples.value("rq_jobs", queue="q0", status="queued") == 2
        # 20 scrapes one after another, and the 10 at once shared fewer reads between them.
        assert 21 <= samples.value("rq_exporter_scrape_errors_total") <= 30
        wait_for(lambda: _settled(exporter, threads, fds), timeout=5, what="threads and fds back to baseline")
        wait_for(lambda: _exporter_clients(own_redis) == 1, timeout=5, what="one exporter connection to Redis")
    finally:
        log = exporter.stop()
    assert log.count("cannot read Redis") == 1, log  # one line per outage, not one per scrape
    assert "readable again" in log and "Traceback" not in log


@pytest.mark.parametrize("fault", ["delay", "close", "truncate"])
def test_slow_or_dropping_redis(redis_db, fault):
    _fill(redis_db)
    proxy = FaultProxy(redis_db.port)
    exporter = _exporter(proxy.url)
    pid = exporter.process.pid
    try:
        assert exporter.scrape().value("rq_up") == 1
        threads, fds, clients = _threads(pid), _fds(pid), _exporter_clients(redis_db)
        proxy.set(fault, delay=3.0)  # replies 3 s late: six times the read timeout
        _all_down_in_time(exporter, one_by_one=6, at_once=8)
        proxy.set("pass")
        wait_for(lambda: exporter.scrape().value("rq_up") == 1, timeout=5, interval=0.1, what="recovery")
        wait_for(lambda: _settled(exporter, threads, fds), timeout=5, what="threads and fds back to baseline")
        # Every connection the faults broke was closed; one stays open for the next scrape.
        wait_for(lambda: proxy.open_connections() == 2, timeout=5, what="one proxied connection left")
        wait_for(lambda: _exporter_clients(redis_db) <= clients, timeout=5, what="Redis clients back to baseline")
    finally:
        exporter.stop()
        proxy.stop()


def _rss_kib() -> int:
    return proc_status("self", "VmRSS")


@pytest.mark.slow
def test_memory_is_flat_over_ten_thousand_scrapes(redis_db):
    """In process and without the text exposition (prometheus_client's, not ours), so 10,000
    scrapes of a small real dataset fit in a short test."""
    _fill(redis_db, queues=5, jobs=3)
    client = redis_db.client()
    client.hset("rq:worker:w1", mapping={"state": "idle", "queues": "q0,q1", "last_heartbeat": "2024-01-01T00:00:00Z"})
    client.sadd("rq:workers", "rq:worker:w1", "rq:worker:gone")
    client.sadd("rq:queues", "not-a-queue-key")  # a malformed entry: counted every scrape, logged once
    settings = Settings.model_validate({"redis_url": redis_db.url})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RQCollector(connect(settings), settings))
    assert b"rq_up 1.0" in generate_latest(registry)

    def scrape() -> int:
        return sum(len(family.samples) for family in registry.collect())

    for _ in range(500):  # warm-up: caches, the connection, lazily created objects
        scrape()
    baseline = _rss_kib()
    samples = []
    for i in range(10_000):
        count = scrape()
        if i % 1000 == 999:
            samples.append(_rss_kib())
    assert count > 50
    # Flat: a leak of even 100 bytes a scrape would be 1 MB here.
    assert max(samples) - baseline < 1024, (baseline, samples)
    assert samples[-1] - samples[0] < 512, samples
    assert b"rq_up 1.0" in generate_latest(registry)
