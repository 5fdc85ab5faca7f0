"""The Redis URL checked whole at start (rq_exporter_ng/redis_url.py): from --redis-url, our variable,
rq-exporter 3.x's and each targets file entry, a bad one is one line naming the setting and exit 2,
never a traceback at start or on every scrape, nor another database than the one written.

The rules run in-process through loading.load; what the user sees runs the real command; that
every URL the check accepts is one redis-py connects with runs against a real redis-server.
"""

from __future__ import annotations

import os

import pytest

from devkit import free_port
from rq_exporter_ng import redis_url
from rq_exporter_ng.connection import connect
from rq_exporter_ng.loading import load
from rq_exporter_ng.settings import InvalidSettings
from support import run_exporter

SECRET = "hunter2-s3cr3t"

BAD = [
    # (URL, what the message says)
    ("redis://127.0.0.1:6379/0?db=abc", "query parameter db: 'abc' is not a whole number"),
    ("redis://127.0.0.1:6379/0?socket_timeout=abc", "query parameter socket_timeout: 'abc' is not a number"),
    ("redis://127.0.0.1:6379/0?health_check_interval=x", "health_check_interval: 'x' is not a whole number"),
    ("redis://127.0.0.1:6379/0?socket_connect_timeout=-1", "must be a positive number of seconds"),
    ("redis://127.0.0.1:6379/0?socket_timeout=nan", "must be a positive number of seconds"),
    ("redis://127.0.0.1:6379/0?max_connections=0", "max_connections: '0' must be at least 1"),
    ("redis://h:6379/abc", "the path must be /DB, a database number"),
    ("redis://h:6379/1/2", "the path must be /DB, a database number"),
    ("redis://h:6379/-1", "the path must be /DB"),
    ("redis://h:6379/1?db=2", "database 1 in the path and db=2 in the query"),
    ("redis://h:6379/0?db=1&db=2", "query parameter db: given twice"),
    ("redis://h:6379/0?db=", "query parameter db: no value"),
    ("redis://h:6379/0?foo=bar", "query parameter foo: not one redis-py takes in a redis:// URL"),
    ("redis://h:6379/0?ssl_check_hostname=false", "ssl_check_hostname: not one redis-py takes in a redis://"),
    ("redis://h:6379/0?timeout=3", "query parameter timeout: not one redis-py takes"),
    ("rediss://h:6379/0?ssl_check_hostname=flase", "ssl_check_hostname: 'flase' is not true or false"),
    ("redis://h:6379/0?socket_keepalive=off", "socket_keepalive: 'off' is not true or false"),
    ("redis://h:6379/0?retry_on_error=[NoSuchError]", "retry_on_error"),
    ("rediss://h:6379/0?ssl_cert_reqs=maybe", "ssl_cert_reqs: 'maybe' is not none, optional or required"),
    ("rediss://h:6379/0?ssl_ca_certs=/nonexistent/ca.crt", "ssl_ca_certs: '/nonexistent/ca.crt' is not a readable"),
    ("redis://h:6379/0?protocol=3", "protocol: '3' is not 2"),
    ("redis://h:6379/0?decode_responses=true", "decode_responses: not allowed"),
    ("redis://:6379/0", "no host"),
    ("redis://999.1.1.1:6379/0", "not a host name or IP address: '999.1.1.1'"),
    ("redis://bad host:6379/0", "not a host name or IP address"),
    ("redis://h:0/0", "port must be 1-65535"),
    ("redis://h:70000/0", "the port is not a number in 1-65535"),
    (f"redis://user:{SECRET}@h:notaport/0", "the port is not a number"),
    (f"redis://:{SECRET[:4]}#{SECRET[4:]}@h:6379/0", "percent-encode it as %23"),
    ("redis:/h:6379/0", "scheme must be one of"),
    ("http://h/0", "scheme must be one of"),
    ("unix://", "no socket path"),
    ("unix://host/run/redis.sock", "names a socket path and no host"),
    ("unix:///run/redis.sock?ssl_ca_certs=/etc/hostname", "ssl_ca_certs: not one redis-py takes in a unix://"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("RQ_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(("url", "message"), BAD, ids=[u for u, _ in BAD])
def test_a_bad_url_is_an_invalid_setting(url, message):
    with pytest.raises(InvalidSettings) as error:
        load(["--redis-url", url])
    assert error.value.field == "redis_url"
    assert message in error.value.message
    assert SECRET not in str(error.value) and SECRET[:4] not in str(error.value)


GOOD = [
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("redis://h", "redis://h"),
    ("redis://h:6379/", "redis://h:6379/"),
    ("REDIS://h:6379/2", "redis://h:6379/2"),  # redis-py 5 takes only lower case
    ("redis://h:6379/3?db=3", "redis://h:6379/3?db=3"),
    ("redis://[::1]:6380/1", "redis://[::1]:6380/1"),
    ("redis://redis_1.internal:6379/0", "redis://redis_1.internal:6379/0"),
    ("rediss://u:p%23w@h:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true",
     "rediss://u:p%23w@h:6380/0?ssl_cert_reqs=required&ssl_check_hostname=true"),
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2"),
]


@pytest.mark.parametrize(("url", "kept"), GOOD)
def test_a_good_url_is_kept(url, kept):
    assert load(["--redis-url", url]).redis_url == kept


def test_passwords_in_the_query_are_redacted():
    assert redis_url.redact(f"redis://h/0?password={SECRET}&db=1") == "redis://h/0?password=***&db=1"
    assert redis_url.redact(f"redis://u:{SECRET}@h:1/0?ssl_password={SECRET}") == \
        "redis://u:***@h:1/0?ssl_password=***"
    with pytest.raises(InvalidSettings) as error:
        load(["--redis-url", f"redis://h/0?password={SECRET}&db=x"])
    assert SECRET not in str(error.value)


# --- what the user sees: the real command ---------------------------------------------------------

@pytest.mark.parametrize("where", ["--redis-url", "RQ_EXPORTER_REDIS_URL", "RQ_REDIS_URL"])
@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0?db=abc", "redis://127.0.0.1:6379/abc",
                                 f"redis://u:{SECRET}@127.0.0.1:6379/0?socket_timeout=abc"])
def test_a_bad_url_is_one_line_and_exit_2(where, url):
    args, env = (["--redis-url", url], {}) if where == "--redis-url" else ([], {where: url})
    result = run_exporter("--port", str(free_port()), *args, env=env, timeout=10)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("rq-exporter: invalid setting --redis-url (RQ_EXPORTER_REDIS_URL, RQ_REDIS_URL): ")
    assert SECRET not in line and "Traceback" not in line


def test_a_bad_targets_file_url_names_the_target_and_exits_2(tmp_path):
    path = tmp_path / "targets.yml"
    path.write_text("targets:\n  orders:\n    redis_url: redis://127.0.0.1:6379/0\n"
                    "  billing:\n    redis_url: redis://127.0.0.1:6379/1/2\n")
    result = run_exporter("--port", str(free_port()), "--targets-file", str(path), timeout=10)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("rq-exporter: invalid setting --targets-file (RQ_EXPORTER_TARGETS_FILE): "
                           "targets.billing: redis_url: the path must be /DB"), line


# --- what the check accepts, redis-py connects with ------------------------------------------------

@pytest.mark.redis
def test_every_query_parameter_accepted_connects(redis_db):
    redis_db.client().set("where", "db0")
    redis_db.client(db=3).set("where", "db3")
    base = f"127.0.0.1:{redis_db.port}"
    query = ("socket_timeout=1.5&socket_connect_timeout=2&socket_keepalive=yes&retry_on_timeout=false"
             "&max_connections=4&health_check_interval=0&client_name=rq-exporter&protocol=2")
    for url in (f"redis://{base}/3", f"redis://{base}/?db=3&{query}", f"REDIS://{base}/3?{query}&db=3"):
        client = connect(load(["--redis-url", url]))
        assert client.get("where") == b"db3", url
        client.close()
