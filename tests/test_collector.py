"""The collector's own behaviour that needs no real Redis: the garbage-collector pause around a scrape.

(A scrape against a real Redis, down, slow or malformed, is in test_faults.py, test_outage.py and
test_fuzz.py.)
"""

from __future__ import annotations

import gc
import threading

import fakeredis
import pytest

from rq_exporter.collector import GcPause, RQCollector
from rq_exporter.settings import Settings


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
