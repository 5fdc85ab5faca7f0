"""HTTP endpoints of the real exporter process, against a real redis-server with a password."""

from __future__ import annotations

import gzip
import signal
import time
import urllib.error
import urllib.request

import pytest

from devkit import patient, rq_time
from rq_exporter_ng import __version__
from support import Exporter, RedisServer, parse_samples

pytestmark = pytest.mark.redis

PASSWORD = "pa55-w0rd-xyzzy"


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def secured_redis():
    # RedisServer pings without a password to know it is up; add the password once it answers.
    server = RedisServer().start()
    client = server.client()
    client.config_set("requirepass", PASSWORD)
    authed = server.client(password=PASSWORD)
    authed.sadd("rq:queues", "rq:queue:default")
    authed.rpush("rq:queue:default", "j1")
    authed.hset("rq:job:j1", "enqueued_at", rq_time())
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def exporter(secured_redis):
    url = f"redis://default:{PASSWORD}@127.0.0.1:{secured_redis.port}/0"
    process = Exporter("--redis-url", url)
    yield process
    process.stop()


def test_landing_page(exporter, secured_redis):
    status, headers, body = get(exporter.base + "/")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert __version__ in page
    assert f"redis://default:***@127.0.0.1:{secured_redis.port}/0" in page
    assert 'href="metrics"' in page and 'href="healthz"' in page


def test_healthz(exporter):
    status, _, body = get(exporter.base + "/healthz")
    assert (status, body) == (200, b"ok\n")


def test_metrics_text_format(exporter):
    status, headers, body = get(exporter.base + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_samples(body.decode())
    assert samples.value("rq_up") == 1  # it authenticated with the password from the URL
    assert samples.value("rq_jobs", queue="default", status="queued") == 1
    assert "# HELP rq_up " in body.decode()


def test_metrics_openmetrics(exporter):
    status, headers, body = get(exporter.base + "/metrics",
                                {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE rq_workers_success counter" in text
    assert 'rq_jobs{queue="default",status="queued"} 1.0' in text


def test_metrics_gzip(exporter):
    status, headers, body = get(exporter.base + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    samples = parse_samples(gzip.decompress(body).decode())
    assert samples.value("rq_up") == 1


@pytest.mark.parametrize("path", ["/nope", "/metrics/extra", "/favicon.ico"])
def test_404_elsewhere(exporter, path):
    status, _, _ = get(exporter.base + path)
    assert status == 404


def test_password_appears_nowhere(secured_redis):
    url = f"redis://default:{PASSWORD}@127.0.0.1:{secured_redis.port}/0"
    wrong = f"redis://default:{PASSWORD}x@127.0.0.1:{secured_redis.port}/0"
    for args in (["--redis-url", url, "--log-level", "DEBUG"],
                 ["--redis-url", wrong, "--log-format", "json"],  # rejected password: error is logged
                 ["--redis-host", "127.0.0.1", "--redis-port", str(secured_redis.port),
                  "--redis-pass", PASSWORD, "--log-level", "DEBUG"]):
        process = Exporter(*args)
        try:
            seen = [get(process.base + path)[2].decode() for path in ("/", "/metrics", "/healthz", "/x")]
            seen.append(get(process.base + "/metrics", {"Accept": "application/openmetrics-text"})[2].decode())
        finally:
            log = process.stop()
        assert log  # it did log (start-up, and the auth error for the wrong password)
        for text in [*seen, log]:
            assert PASSWORD not in text
        up = parse_samples(seen[1]).value("rq_up")
        assert up == (0 if args[1] == wrong else 1)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(secured_redis, signum):
    process = Exporter("--redis-url", f"redis://:{PASSWORD}@127.0.0.1:{secured_redis.port}/0")
    get(process.base + "/metrics")
    start = time.monotonic()
    process.process.send_signal(signum)
    code = process.process.wait(patient(10))
    elapsed = time.monotonic() - start
    log = process.process.stderr.read()
    assert code == 0, log
    assert elapsed < 3
    assert "Traceback" not in log and "stopped" in log


def test_own_metrics(exporter):
    import platform

    first = parse_samples(get(exporter.base + "/metrics")[2].decode())
    second = parse_samples(get(exporter.base + "/metrics")[2].decode())
    assert second.value("rq_exporter_scrapes_total") == first.value("rq_exporter_scrapes_total") + 1
    assert second.value("rq_exporter_scrape_errors_total") == 0
    # one queue with a head job: sets, per-queue reads, the head's enqueued_at
    assert second.value("rq_exporter_redis_round_trips") == 3
    assert 0 < second.value("rq_exporter_scrape_duration_seconds") < 1
    assert second.value("rq_exporter_build_info", version=__version__,
                        python_version=platform.python_version()) == 1
