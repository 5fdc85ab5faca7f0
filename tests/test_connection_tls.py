"""rediss:// against a real redis-server serving only TLS and requiring client certificates,
as an ACL user with a password; a real RQ worker runs jobs over the same TLS connection."""

from __future__ import annotations

import pytest
from certs import Certs, TlsRedis, make_certs
from rq import Queue

from support import Exporter, RQWorker, short_timeouts

pytestmark = pytest.mark.redis

PASSWORD = "tls-user-pw"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("redis-certs"))


@pytest.fixture(scope="module")
def tls_redis(certs):
    server = TlsRedis(certs).start()
    server.client().execute_command("ACL", "SETUSER", "rq-exporter", "on", f">{PASSWORD}", "~*", "+@read",
                                    "+ping")
    yield server
    server.cleanup()


def _tls_flags(certs: Certs, cert: bool = True) -> list[str]:
    flags = ["--redis-tls-ca-file", str(certs.ca)]
    if cert:
        flags += ["--redis-tls-cert-file", str(certs.client_cert), "--redis-tls-key-file", str(certs.client_key)]
    return flags


@pytest.mark.workers
def test_rediss_with_client_certificate_and_acl_user(tls_redis, certs, tmp_path):
    client = tls_redis.client()
    client.flushall()
    queue = Queue("secure", connection=client)
    for _ in range(2):
        queue.enqueue("jobs.sleep_for", 0)
    # A real worker over TLS; redis-py takes the certificate options from the URL's query.
    worker_url = (f"{tls_redis.url}?ssl_ca_certs={certs.ca}&ssl_certfile={certs.client_cert}"
                  f"&ssl_keyfile={certs.client_key}")
    worker = RQWorker(worker_url, "secure", burst=True)
    assert worker.wait(60) == 0, worker.process.stderr.read()
    queue.enqueue("jobs.sleep_for", 0)

    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    exporter = Exporter("--redis-url", tls_redis.url, "--redis-username", "rq-exporter",
                        "--redis-password-file", str(password_file), *_tls_flags(certs))
    try:
        samples = exporter.scrape()
    finally:
        log = exporter.stop()
    assert samples.value("rq_up") == 1
    assert samples.value("rq_jobs", queue="secure", status="finished") == 2
    assert samples.value("rq_jobs", queue="secure", status="queued") == 1
    assert PASSWORD not in log


@pytest.mark.parametrize("case", ["no client certificate", "unknown CA", "wrong password", "plain redis://"])
def test_tls_or_auth_failures_are_rq_up_0_and_logged(tls_redis, certs, case):
    args = ["--redis-url", tls_redis.url, "--redis-username", "rq-exporter", "--redis-password", PASSWORD,
            *short_timeouts()]
    if case == "no client certificate":
        args += _tls_flags(certs, cert=False)
    elif case == "unknown CA":
        args += ["--redis-tls-ca-file", str(certs.dir / "rogue-ca.crt"), *_tls_flags(certs)[2:]]
    elif case == "wrong password":
        args[args.index(PASSWORD)] = "not-the-password"
        args += _tls_flags(certs)
    else:
        args[1] = f"redis://127.0.0.1:{tls_redis.port}/0"
    exporter = Exporter(*args)
    try:
        scrapes = [exporter.scrape() for _ in range(4)]
    finally:
        log = exporter.stop()
    assert [s.value("rq_up") for s in scrapes] == [0, 0, 0, 0]
    assert scrapes[-1].value("rq_exporter_scrape_errors_total") == 4
    assert "cannot read Redis at rediss://127.0.0.1" in log or "cannot read Redis at redis://127.0.0.1" in log
    # Logged once, not every scrape: a refused client certificate (TLS 1.3) surfaces as either of
    # two errors depending on timing, and a changed reason is logged at most once a minute.
    assert log.count("cannot read Redis") == 1, log
    assert PASSWORD not in log
