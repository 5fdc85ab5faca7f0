"""The collector's own behaviour that needs no real Redis: the garbage-collector pause around a scrape.

(A scrape against a real Redis, down, slow or malformed, is in test_faults.py, test_outage.py and
test_fuzz.py.)
"""

from __future__ import annotations

import gc
import threading

import fakeredis
import pytest

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


def test_a_failing_scrape_turns_the_collector_back_on():
    class Broken(fakeredis.FakeRedis):
        def pipeline(self, *args, **kwargs):
            raise RuntimeError("collector bug")

    with pytest.raises(RuntimeError):
        list(RQCollector(Broken(), Settings()).collect())
    assert gc.isenabled()


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
