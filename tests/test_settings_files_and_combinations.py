"""Settings' files, and settings given together: password files (empty, missing from a Kubernetes
Secret, padded, no text file), TLS keys that are not the certificate's or are encrypted, the Redis
URL beside the other Redis settings, RQ_REDIS_PASS_FILE beside RQ_REDIS_PASS.

Parsing is checked in-process through loading.load (the function the command calls); what the user
sees (one line + exit 2, the log, the database read) on the real `python -m rq_exporter_ng`.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from settings_fixtures import SECRET, certs_fixture, clean_env, files_fixture  # noqa: F401  (pytest fixtures)

from rq_exporter_ng import settings as settings_module
from rq_exporter_ng.connection import password, redis_url
from rq_exporter_ng.loading import load
from support import run_exporter


def test_an_empty_password_means_no_password(tmp_path, monkeypatch):
    """No AUTH at all: an empty file (a Secret's empty key) or variable is no password."""
    for content in ("", "\n", "\r\n"):
        (tmp_path / "pw").write_text(content)
        assert password(load(["--redis-password-file", str(tmp_path / "pw")])) is None
    monkeypatch.setenv("RQ_EXPORTER_REDIS_PASSWORD", "")
    assert password(load([])) is None


def test_a_password_file_missing_from_its_kubernetes_secret_means_no_password(tmp_path):
    """kubelet's layout of a Secret volume (files linked through ..data); a Secret without the key,
    mounted optional, has no file: no password, where a missing file elsewhere is an error."""
    (tmp_path / "..2026_12_04_10_00_00.1").mkdir()
    (tmp_path / "..data").symlink_to("..2026_12_04_10_00_00.1")
    assert password(load(["--redis-password-file", str(tmp_path / "password")])) is None
    with pytest.raises(settings_module.InvalidSettings, match="cannot read"):
        load(["--redis-password-file", str(tmp_path / "elsewhere" / "password")])


@pytest.mark.parametrize("text", [f"{SECRET}\r\n", f" {SECRET}\t\n", f"\n{SECRET}  "])
def test_whitespace_around_the_password_in_its_file_is_dropped(tmp_path, text):
    """As rq-exporter 3.x read the file (f.read().strip()): a file written with a stray space or a
    CRLF gives the password a 3.x exporter sent."""
    path = tmp_path / "password"
    path.write_text(text)
    assert password(load(["--redis-password-file", str(path)])) == SECRET


@pytest.mark.parametrize("kind, named", [("fifo", "not a file"), ("latin-1", "not UTF-8 text")])
def test_a_password_file_that_is_no_text_file_is_one_line_and_exit_2(tmp_path, kind, named):
    """A FIFO would block the first scrape for ever; bytes that are no UTF-8 raised a traceback."""
    path = tmp_path / "password"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"caf\xe9\n")
    result = run_exporter("--redis-password-file", str(path), timeout=10)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--redis-password-file" in lines[0] and named in lines[0], result.stderr


def test_a_tls_key_that_is_not_the_certificates_is_one_line_and_exit_2(certs):
    result = run_exporter("--redis-url", "rediss://h:6380/0", "--redis-tls-cert-file", str(certs.client_cert),
                          "--redis-tls-key-file", str(certs.server_key), timeout=10)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--redis-tls-cert-file" in lines[0] and "KEY_VALUES_MISMATCH" in lines[0], \
        result.stderr


def test_the_redis_url_wins_and_port_or_db_alone_are_localhosts(monkeypatch):
    """As rq-exporter 3.x: RQ_REDIS_URL wins over every other Redis setting (Sentinel's too), and
    RQ_REDIS_PORT or RQ_REDIS_DB without RQ_REDIS_HOST mean localhost's (they were ignored)."""
    assert redis_url(load(["--redis-port", "6380"])) == "redis://localhost:6380/0"
    monkeypatch.setenv("RQ_REDIS_DB", "2")
    assert redis_url(load([])) == "redis://localhost:6379/2"
    both = load(["--redis-url", "redis://h:1/3", "--sentinel-host", "s1"])  # no master needed: unused
    assert both.sentinel_host is None and redis_url(both) == "redis://h:1/3"
    assert both.unused == ("sentinel_host",) and load([]).unused == ()


def test_sentinel_beside_the_url_is_said_unused_in_the_log():
    """k8s/deployment.yaml always sets RQ_EXPORTER_REDIS_URL: a --sentinel-host added to it is not used,
    and the log says so rather than reading the URL's Redis silently."""
    from support import Exporter

    exporter = Exporter("--sentinel-host", "s1", "--sentinel-master", "m",
                        env={"RQ_EXPORTER_REDIS_URL": "redis://127.0.0.1:1/0"})
    log = exporter.stop()
    assert "--sentinel-host/RQ_EXPORTER_SENTINEL_HOST/RQ_SENTINEL_HOST is not used: --redis-url" in log, log


def test_rq_redis_pass_file_wins_over_rq_redis_pass(files, monkeypatch):
    """As in rq-exporter 3.x; our own flags or variables given both stay an error (one must go)."""
    monkeypatch.setenv("RQ_REDIS_PASS", "not-this-one")
    monkeypatch.setenv("RQ_REDIS_PASS_FILE", files["password"])
    assert password(load([])) == SECRET
    with pytest.raises(settings_module.InvalidSettings, match="not both"):
        load(["--redis-password", "x", "--redis-password-file", files["password"]])


def test_an_encrypted_tls_key_is_opened_with_the_urls_ssl_password_and_never_asks(tmp_path):
    """OpenSSL asks for a pass phrase on the terminal when a key is encrypted: the start-up check gives
    it the URL's ssl_password (redis-py does the same when it connects), or says what is missing."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem"), "-days", "2", "-subj", "/CN=x", "-passout", "pass:pw"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    url = f"rediss://h:6380/0?ssl_certfile={tmp_path / 'c.pem'}&ssl_keyfile={tmp_path / 'k.pem'}"
    assert load(["--redis-url", url + "&ssl_password=pw"]).redis_url
    for given, said in (("", "is encrypted and no pass phrase is given"),
                        ("&ssl_password=wrong", "is encrypted and the URL's ssl_password does not open it")):
        with pytest.raises(settings_module.InvalidSettings, match=said):
            load(["--redis-url", url + given])
    with pytest.raises(settings_module.InvalidSettings, match="is encrypted and no pass phrase"):
        load(["--sentinel-host", "s", "--sentinel-master", "m", "--redis-tls-cert-file", str(tmp_path / "c.pem"),
              "--redis-tls-key-file", str(tmp_path / "k.pem"), "--redis-tls-ca-file", str(tmp_path / "c.pem")])


@pytest.mark.redis
def test_rq_redis_db_alone_reads_that_database_of_localhost(redis_db):
    """The real exporter with RQ_REDIS_PORT and RQ_REDIS_DB only (no host): it reads database 3 of
    localhost's Redis, where before it read database 0 of port 6379."""
    from support import Exporter

    redis_db.client(db=3).sadd("rq:queues", "rq:queue:only-in-db-3")
    exporter = Exporter(env={"RQ_REDIS_PORT": str(redis_db.port), "RQ_REDIS_DB": "3"})
    try:
        samples = exporter.scrape()
        assert samples.value("rq_up") == 1
        assert samples.value("rq_jobs", queue="only-in-db-3", status="queued") == 0
    finally:
        exporter.stop()
