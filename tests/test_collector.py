"""The collector's own behaviour that needs no real Redis: the garbage-collector pause around a scrape.

(A scrape against a real Redis, down, slow or malformed, is in test_faults.py, test_outage.py and
test_fuzz.py.)
"""

from __future__ import annotations

import gc
import threading
import time

import fakeredis

from rq_exporter_ng.collector import GcPause, RQCollector
from rq_exporter_ng.settings import Settings


class Watched(fakeredis.FakeRedis):
    """A fakeredis client that notes whether the cyclic collector was on when the scrape read Redis."""

    seen: list[bool]

    def pipeline(self, *args, **kwargs):
        self.seen.append(gc.isenabled())
        return super().pipeline(*args, **kwargs)


def test_a_scrape_reads_redis_with_the_garbage_collector_paused():
    client = Watched()
    client.seen = []
    client.sadd("rq:queues", "rq:queue:default")
    collector = RQCollector(client, Settings())
    assert gc.isenabled()
    families = {f.name: f for f in collector.collect()}
    assert families["rq_up"].samples[0].value == 1
    assert client.seen and not any(client.seen)
    assert gc.isenabled()


def test_a_failing_scrape_turns_the_collector_back_on(caplog):
    class Broken(fakeredis.FakeRedis):
        def pipeline(self, *args, **kwargs):
            raise RuntimeError("collector bug")

    collector = RQCollector(Broken(), Settings())
    for _ in range(2):
        families = {f.name: f for f in collector.collect()}
        assert families["rq_up"].samples[0].value == 0
    assert gc.isenabled()
    # Not Redis' fault: logged with its traceback, once
    (record,) = [r for r in caplog.records if "collector bug" in r.getMessage()]
    assert record.exc_info is not None


def test_an_error_that_is_not_redis_answers_rq_up_0_and_a_scrape_error():
    """redis-py raises OverflowError, not a RedisError, for a timeout a socket cannot hold: the
    scrape still answers (rq_up 0, one more scrape error) instead of an HTTP 500. Settings refuse
    such a timeout; a client made with one reaches the collector only through code like this."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1e300)
    families = {f.name: f for f in RQCollector(client, Settings()).collect()}
    assert families["rq_up"].samples[0].value == 0
    assert families["rq_exporter_scrape_errors"].samples[0].value == 1


def test_a_collector_someone_else_turned_off_stays_off():
    pause = GcPause()
    gc.disable()
    try:
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_scrapes_share_one_pause():
    pause = GcPause()
    inside, release = threading.Event(), threading.Event()

    def scrape() -> None:
        with pause:
            inside.set()
            release.wait(5)

    other = threading.Thread(target=scrape)
    other.start()
    assert inside.wait(5)
    with pause:
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other scrape still runs
    release.set()
    other.join(5)
    assert gc.isenabled()


def test_a_name_filter_serves_the_named_families():
    """/metrics?name[]=rq_jobs: the registry knows the collector's names from describe(),
    which comes from the catalogue and reads nothing."""
    from wsgiref.util import setup_testing_defaults

    from prometheus_client import CollectorRegistry

    from rq_exporter_ng.web.server import make_metrics_app

    client = fakeredis.FakeRedis()
    client.sadd("rq:queues", "rq:queue:default")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RQCollector(client, Settings()))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics",
               "QUERY_STRING": "name[]=rq_jobs&name[]=rq_up&name[]=rq_exporter_scrapes_total"}
    setup_testing_defaults(environ)
    body = b"".join(make_metrics_app(registry)(environ, lambda status, headers: None)).decode()
    names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if not line.startswith("#")}
    assert names == {"rq_jobs", "rq_up", "rq_exporter_scrapes_total"}
    assert 'rq_jobs{queue="default",status="queued"} 0.0' in body



def test_two_scrapes_at_once_share_one_read_and_write_the_same_body():
    """The single flight shares the read (one immutable value), not built families: each caller
    builds and writes its own, and they are the same bytes."""
    from prometheus_client import CollectorRegistry

    from rq_exporter_ng.singleflight import SingleFlight
    from rq_exporter_ng.web.exposition import render

    joined = threading.Event()

    class Held(fakeredis.FakeRedis):
        """Counts the read's rounds; the first round of the shared read waits for the other caller."""

        rounds = 0
        hold = False

        def pipeline(self, *args, **kwargs):
            Held.rounds += 1
            if Held.hold:
                Held.hold = False
                assert joined.wait(5)
                time.sleep(0.05)  # the joiner, from run() to waiting on the call in flight
            return super().pipeline(*args, **kwargs)

    class Watched(SingleFlight):
        def run(self, function):
            if self._current is not None:  # a read in flight: this caller joins it
                joined.set()
            return super().run(function)

    client = Held()
    for name in ("default", "high", "low"):
        client.sadd("rq:queues", f"rq:queue:{name}")
        client.rpush(f"rq:queue:{name}", "a", "b")
    client.sadd("rq:workers", "rq:worker:w1")
    client.hset("rq:worker:w1", mapping={"state": "idle", "queues": "default,high",
                                         "birth": "2026-01-01T00:00:00Z", "last_heartbeat": "2026-01-01T00:00:00Z"})
    collector = RQCollector(client, Settings())
    collector._flight = Watched()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    render(registry, None)
    one_read = Held.rounds
    Held.rounds, Held.hold = 0, True
    bodies: list[bytes] = []

    def scrape() -> None:
        bodies.append(render(registry, None)[0])

    leader = threading.Thread(target=scrape)
    leader.start()
    while Held.hold:  # until the leader is in the read's first round
        time.sleep(0.001)
    joiner = threading.Thread(target=scrape)
    joiner.start()
    leader.join(10)
    joiner.join(10)
    assert joined.is_set()
    assert Held.rounds == one_read
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert b'rq_jobs{queue="high",status="queued"} 2.0' in bodies[0]
    assert b"rq_exporter_scrapes_total 2.0" in bodies[0]  # the second read, shared


def test_families_built_late_are_those_of_their_own_scrape():
    """A caller builds its families as they are written, possibly while the next read runs: they
    come from its scrape's value alone, not from the counters as they stand when built."""
    client = fakeredis.FakeRedis()
    client.sadd("rq:queues", "rq:queue:default")
    client.rpush("rq:queue:default", "a")
    collector = RQCollector(client, Settings())
    slow = collector.collect()
    first = next(slow)  # the read is done; the rest is built later
    client.rpush("rq:queue:default", "b")
    client.delete("rq:queues")
    client.set("rq:queues", "not a set")  # the next scrape skips it, and counts it
    later = {f.name: f for f in collector.collect()}
    rest = {f.name: f for f in [first, *slow]}

    def value(families, name, **labels):
        return next(s.value for s in families[name].samples if s.labels == labels and not s.name.endswith("_created"))

    assert value(later, "rq_exporter_skipped", reason="wrong_type") == 1
    assert "wrong_type" not in {s.labels.get("reason") for s in rest["rq_exporter_skipped"].samples}
    assert value(rest, "rq_exporter_scrapes") == 1 and value(later, "rq_exporter_scrapes") == 2
    assert value(rest, "rq_jobs", queue="default", status="queued") == 1
