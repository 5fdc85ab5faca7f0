"""Redis down, silent or restarted: every scrape answers 200 in time, rq_up says why, recovery is automatic."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from devkit import free_port, wait_for
from support import Exporter

OWN_FAMILIES = {"rq_up", "rq_exporter_scrape_duration_seconds", "rq_exporter_scrapes_total",
                "rq_exporter_scrape_errors_total", "rq_exporter_build_info"}


def timed_scrape(exporter: Exporter):
    start = time.monotonic()
    samples = exporter.scrape()
    return samples, time.monotonic() - start


def test_redis_down_at_start_up():
    port = free_port()  # nothing listens here
    exporter = Exporter("--redis-url", f"redis://127.0.0.1:{port}/0", "--redis-connect-timeout", "1")
    try:
        for n in (1, 2, 3):
            samples, elapsed = timed_scrape(exporter)
            assert samples.value("rq_up") == 0
            assert samples.names() >= OWN_FAMILIES
            assert samples.value("rq_exporter_scrape_errors_total") == n
            assert not samples.series("rq_jobs")  # no made-up zeros for RQ's state
            assert elapsed < 2
    finally:
        log = exporter.stop()
    assert log.count("cannot read Redis") == 1, log
    assert "Connection refused" in log or "connecting" in log


class SilentRedis:
    """Accepts connections and never answers: a hung Redis or a black-holing network path."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for conn in self.connections:
            conn.close()


def test_silent_redis_answers_within_the_read_timeout():
    silent = SilentRedis()
    exporter = Exporter("--redis-url", f"redis://127.0.0.1:{silent.port}/0",
                        "--redis-connect-timeout", "0.5", "--redis-read-timeout", "0.5")
    try:
        for _ in range(2):
            samples, elapsed = timed_scrape(exporter)
            assert samples.value("rq_up") == 0
            assert 0.4 < elapsed < 2.5, elapsed
            assert samples.value("rq_exporter_scrape_duration_seconds") < 2.5
    finally:
        log = exporter.stop()
        silent.close()
    assert log.count("cannot read Redis") == 1, log
    assert "Timeout" in log


@pytest.mark.redis
def test_redis_stopped_and_restarted_mid_run(own_redis):
    r = own_redis.client()
    r.sadd("rq:queues", "rq:queue:default")
    r.rpush("rq:queue:default", "j1", "j2")
    exporter = Exporter("--redis-url", own_redis.url, "--redis-connect-timeout", "1", "--redis-read-timeout", "1")
    try:
        samples = exporter.scrape()
        assert samples.value("rq_up") == 1
        assert samples.value("rq_exporter_scrape_errors_total") == 0

        own_redis.stop()
        for n in (1, 2, 3):
            samples, elapsed = timed_scrape(exporter)
            assert samples.value("rq_up") == 0
            assert samples.value("rq_exporter_scrape_errors_total") == n
            assert samples.names() >= OWN_FAMILIES
            assert elapsed < 3

        own_redis.start()  # same port; the data is gone (no persistence), which the exporter just reports
        own_redis.client().rpush("rq:queue:default", "j3")
        own_redis.client().sadd("rq:queues", "rq:queue:default")
        samples = wait_for(lambda: (s := exporter.scrape()).value("rq_up") == 1 and s, timeout=10,
                           what="rq_up 1 after the restart")
        assert samples.value("rq_jobs", queue="default", status="queued") == 1
        assert samples.value("rq_exporter_scrape_errors_total") == 3
    finally:
        log = exporter.stop()
    # why it failed: once, not per scrape; and that it recovered
    assert log.count("cannot read Redis") == 1, log
    assert log.count("is readable again") == 1, log
    assert "Traceback" not in log


def test_start_up_logs_why_redis_cannot_be_read_before_any_scrape():
    port = free_port()
    exporter = Exporter("--redis-url", f"redis://127.0.0.1:{port}/0")
    time.sleep(0.5)
    log = exporter.stop()
    assert log.count("cannot read Redis") == 1 and "Connection refused" in log, log
