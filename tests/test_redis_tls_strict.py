"""--redis-tls-relax-x509-strict: Python 3.13 verifies certificates strictly (VERIFY_X509_STRICT)
and refuses those of some managed Redis services (Memorystore's: "Missing Authority Key
Identifier"). The setting leaves out that one flag and nothing else of the verification.

Against a real redis-server serving TLS with a CA and a server certificate made without Authority
Key Identifiers. On Python 3.13 (scripts/compat.sh runs this file in .venv-py313) the exporter
without the setting is refused; with it, it reads Redis; with a wrong CA it is refused still.
Both ways of leaving the flag out run: redis-py's ssl_exclude_verify_flags (redis-py 6+), and
the connection class used with redis-py that lacks it (redis_internals).
"""

from __future__ import annotations

import ssl
import sys

import pytest
import redis
from certs import Certs, TlsRedis, make_certs
from redis.sentinel import SentinelManagedSSLConnection

from rq_exporter_ng import redis_internals
from rq_exporter_ng.connection import connect
from rq_exporter_ng.loading import load
from support import Exporter

STRICT_BY_DEFAULT = sys.version_info >= (3, 13)
needs_313 = pytest.mark.skipif(not STRICT_BY_DEFAULT, reason="Python 3.13+ verifies strictly by default")


class NoAkiRedis(TlsRedis):
    def client(self, **options) -> redis.Redis:
        # The test's own admin connection: not what is under test, and refused on 3.13 otherwise.
        return redis.Redis(port=self.port, ssl=True, ssl_cert_reqs="none", **options)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("no-aki-certs"), aki=False)


@pytest.fixture(scope="module")
def server(certs):
    started = NoAkiRedis(certs, verify_clients=False).start()
    yield started
    started.cleanup()


def _args(server: NoAkiRedis, ca, relax: bool) -> list[str]:
    args = ["--redis-url", server.url, "--redis-tls-ca-file", str(ca),
            "--redis-connect-timeout", "1", "--redis-read-timeout", "1"]
    return args + (["--redis-tls-relax-x509-strict"] if relax else [])


def _scrape(*args: str) -> tuple[float, str]:
    exporter = Exporter(*args)
    try:
        up = exporter.scrape().value("rq_up")
    finally:
        log = exporter.stop()
    return up, log


@needs_313
@pytest.mark.redis
def test_without_the_setting_python_313_refuses_the_certificate(server, certs):
    up, log = _scrape(*_args(server, certs.ca, relax=False))
    assert up == 0
    assert "Missing Authority Key Identifier" in log, log


@pytest.mark.redis
def test_with_the_setting_the_exporter_reads_redis(server, certs):
    up, log = _scrape(*_args(server, certs.ca, relax=True))
    assert up == 1, log


@pytest.mark.redis
def test_with_the_setting_a_wrong_ca_is_still_refused(server, certs):
    up, log = _scrape(*_args(server, certs.dir / "rogue-ca.crt", relax=True))
    assert up == 0
    assert "certificate verify failed" in log, log


@pytest.mark.redis
@pytest.mark.parametrize("redis_py_takes_flags", [True, False], ids=["ssl_exclude_verify_flags", "own class"])
def test_both_ways_of_leaving_the_flag_out(server, certs, monkeypatch, redis_py_takes_flags):
    if redis_py_takes_flags and not redis_internals.takes_verify_flags():
        pytest.skip(f"redis-py {redis.__version__} has no ssl_exclude_verify_flags")
    monkeypatch.setattr(redis_internals, "takes_verify_flags", lambda: redis_py_takes_flags)
    for ca, relax, answers in [(certs.ca, True, True), (certs.dir / "rogue-ca.crt", True, False),
                               (certs.ca, False, not STRICT_BY_DEFAULT)]:
        client = connect(load(_args(server, ca, relax)))
        try:
            assert client.ping() is answers
        except redis.ConnectionError as error:
            assert not answers, error
            assert "certificate verify failed" in str(error)
        finally:
            client.close()


@pytest.mark.parametrize("redis_py_takes_flags", [True, False], ids=["ssl_exclude_verify_flags", "own class"])
def test_with_sentinel_the_master_connection_leaves_the_flag_out(certs, monkeypatch, redis_py_takes_flags):
    if redis_py_takes_flags and not redis_internals.takes_verify_flags():
        pytest.skip(f"redis-py {redis.__version__} has no ssl_exclude_verify_flags")
    monkeypatch.setattr(redis_internals, "takes_verify_flags", lambda: redis_py_takes_flags)
    client = connect(load(["--sentinel-host", "127.0.0.1:1", "--sentinel-master", "m",
                           "--redis-tls-ca-file", str(certs.ca), "--redis-tls-relax-x509-strict"]))
    pool = client.connection_pool
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    if redis_py_takes_flags:
        assert pool.connection_kwargs["ssl_exclude_verify_flags"] == [ssl.VERIFY_X509_STRICT]
    else:
        assert pool.connection_class is redis_internals.relaxed_ssl_connection(sentinel=True)
