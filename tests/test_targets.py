"""Many Redis targets from one exporter: /probe?target=NAME over an allow-list file, each target with
its own credentials, against real redis-servers; no connection anywhere else."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from certs import make_certs
from rq import Queue

from devkit import free_port, run, stop_process, wait_for
from support import ROOT, Exporter, RedisServer, parse_samples, require_tool, run_exporter


def _probe(exporter: Exporter, query: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{exporter.base}/probe{query}", timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _queued(redis_server: RedisServer, queue: str, n: int, **options) -> None:
    q = Queue(queue, connection=redis_server.client(**options))
    for _ in range(n):
        q.enqueue("jobs.sleep_for", 0)


@pytest.fixture
def locked_redis():
    """A redis-server where only an ACL user with a password may read."""
    server = RedisServer().start()
    server.client().config_set("requirepass", "default-pw")
    admin = server.client(password="default-pw")
    admin.execute_command("ACL", "SETUSER", "exporter", "on", ">exporter-pw", "~*", "+@read", "+ping", "+info")
    yield server
    server.cleanup()


@pytest.mark.redis
def test_probe_serves_each_allowed_target_with_its_credentials(redis_db, locked_redis, tmp_path):
    _queued(redis_db, "orders", 2)
    _queued(locked_redis, "billing", 3, password="default-pw")
    password_file = tmp_path / "billing.pw"
    password_file.write_text("exporter-pw\n")
    bystander = RedisServer().start()  # nobody may make the exporter connect here
    targets = tmp_path / "targets.yml"
    targets.write_text(f"""
targets:
  orders:
    redis_url: {redis_db.url}
  billing:
    redis_host: 127.0.0.1
    redis_port: {locked_redis.port}
    redis_username: exporter
    redis_password_file: billing.pw
  down:
    redis_url: redis://127.0.0.1:{free_port()}/0
    redis_connect_timeout: 0.5
""")
    exporter = Exporter("--redis-url", redis_db.url, "--targets-file", str(targets))
    try:
        before = bystander.client().info("stats")["total_connections_received"]
        status, body = _probe(exporter, "?target=orders")
        orders = parse_samples(body)
        assert status == 200 and orders.value("rq_up") == 1
        assert orders.value("rq_jobs", queue="orders", status="queued") == 2
        assert orders.get_value("rq_jobs", queue="billing", status="queued") is None

        status, body = _probe(exporter, "?target=billing")
        billing = parse_samples(body)
        assert status == 200 and billing.value("rq_up") == 1
        assert billing.value("rq_jobs", queue="billing", status="queued") == 3
        assert billing.get_value("rq_jobs", queue="orders", status="queued") is None

        status, body = _probe(exporter, "?target=down")
        assert status == 200 and parse_samples(body).value("rq_up") == 0

        # /probe for a target gives the same metrics as /metrics for the same Redis.
        assert exporter.scrape().names() == orders.names()

        # Not in the allow-list: refused, and no connection is ever made there.
        for query in (f"?target={bystander.url}", f"?target=127.0.0.1:{bystander.port}", "?target=ORDERS",
                      "?target=orders&target=billing", "?target=", ""):
            status, _ = _probe(exporter, query)
            assert status in (400, 404), query
        assert bystander.client().info("stats")["total_connections_received"] == before + 1  # our own INFO
    finally:
        log = exporter.stop()
        bystander.cleanup()
    assert "exporter-pw" not in log


INVALID_TARGETS = [
    ("targets: {}\n", "targets: lists no target"),
    ("orders:\n  redis_url: redis://x:1/0\n", "must be a mapping with one key, targets"),
    ("targets:\n  orders:\n    port: 1\n", "targets.orders.port: not a target setting"),
    ("targets:\n  orders:\n    redis_db: 1\n", "targets.orders: needs redis_url, redis_host or sentinel_host"),
    ("targets:\n  orders:\n    redis_url: http://x\n", "targets.orders: redis_url: scheme must be"),
    ("targets:\n  orders:\n    sentinel_host: s1\n", "targets.orders: sentinel_master: required"),
    ("targets:\n  orders:\n    redis_host: h\n    redis_password_file: nope\n", "targets.orders: redis_password_file: cannot read"),
    ("targets:\n  'a b':\n    redis_host: h\n", "targets.a b: a target name is"),
    ("targets: [\n", "not valid YAML"),
    ("targets:\n  orders:\n    redis_url:\n", "targets.orders: needs redis_url, redis_host or sentinel_host"),
    # a master's name says nothing of where the Sentinels are (it probed localhost)
    ("targets:\n  orders:\n    sentinel_master: m\n", "targets.orders: needs redis_url, redis_host or sentinel_host"),
    # a merge key's values are defaults the mapping's own replace, but its own keys once each
    ("targets:\n  a: &a {redis_host: h}\n  b: {<<: *a, redis_db: 2, redis_db: 3}\n", "'redis_db' is given twice at line 3"),
    ("targets:\n  orders:\n    redis_host: h\n    redis_port: true\n", "targets.orders.redis_port: True is not a port"),
    ("targets:\n  orders:\n    redis_host: h\n  orders:\n    redis_host: i\n", "'orders' is given twice at line 4"),
    ("targets:\n  orders:\n    redis_host: h\n    redis_password_file: .\n",
     "targets.orders: redis_password_file: cannot read"),
    ("targets:\n  orders:\n    redis_host: h\n    redis_connect_timeout: .inf\n",
     "targets.orders: redis_connect_timeout: Input should be less than or equal to 3600"),
    ("targets:\n  orders:\n    sentinel_host: 'h:99999'\n    sentinel_master: m\n",
     "targets.orders: sentinel_host: 'h:99999': the port is not a number"),
    ("targets:\n  orders:\n    redis_host: h\n    queue_include: ''\n", "targets.orders: queue_include: names no pattern"),
    ("targets:\n  orders:\n    redis_host: h\n    [k]: 1\n", "found unhashable key at line 4"),
    # YAML's 1 and "1" are two keys but would be one name
    ("targets:\n  1:\n    redis_host: h\n  '1':\n    redis_host: i\n", "targets.1: quote a name YAML reads as"),
]


@pytest.mark.parametrize("text, named", INVALID_TARGETS)
def test_invalid_targets_file_is_one_line_and_exit_2(tmp_path, text, named):
    path = tmp_path / "targets.yml"
    path.write_text(text)
    result = run_exporter("--port", str(free_port()), "--targets-file", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rq-exporter: invalid setting --targets-file (RQ_EXPORTER_TARGETS_FILE): ")
    assert named in lines[0]


@pytest.mark.promtool
def test_multi_target_prometheus_example_is_valid():
    promtool = require_tool("promtool")
    config = ROOT / "prometheus" / "prometheus-multi-target.yml"
    result = run([promtool, "check", "config", "--syntax-only", str(config)],
                 capture_output=True, text=True, idle=60)
    assert result.returncode == 0, result.stdout + result.stderr
    import yaml

    scrape = yaml.safe_load(config.read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/probe"
    relabel = scrape["relabel_configs"]
    assert {"source_labels": ["__address__"], "target_label": "__param_target"} in relabel
    assert any(r.get("target_label") == "__address__" for r in relabel)


def test_targets_file_example_in_readme_parses(tmp_path):
    """The targets file shown in the README is accepted as written (paths aside)."""
    from rq_exporter_ng import targets
    from rq_exporter_ng.settings import Settings

    readme = (ROOT / "README.md").read_text()
    start = readme.index("```yaml\ntargets:")
    example = readme[start + len("```yaml\n"): readme.index("```", start + 7)]
    import yaml

    raw = yaml.safe_load(example)
    ca = make_certs(tmp_path / "certs").ca
    for entry in raw["targets"].values():  # the secrets it names do not exist here
        for key in [k for k in entry if k.endswith("_file")]:
            # settings load a CA file as the connection will: a real one
            (tmp_path / Path(entry[key]).name).write_bytes(ca.read_bytes() if key.endswith("ca_file") else b"x\n")
            entry[key] = Path(entry[key]).name
    found = targets.parse(raw, Settings.model_validate({}), tmp_path)
    assert set(found) == set(raw["targets"])


@pytest.mark.redis
@pytest.mark.promtool
@pytest.mark.slow
def test_real_prometheus_scrapes_each_target_through_the_example_relabelling(redis_db, locked_redis, tmp_path):
    """The example config as written (addresses and interval aside) with a real Prometheus: one
    series set per target name, each with its own data."""
    import yaml

    binary = require_tool("prometheus")
    _queued(redis_db, "orders", 2)
    _queued(locked_redis, "billing", 1, password="default-pw")
    targets = tmp_path / "targets.yml"
    targets.write_text(f"""targets:
  orders: {{redis_url: "{redis_db.url}"}}
  billing: {{redis_url: "redis://exporter:exporter-pw@127.0.0.1:{locked_redis.port}/0"}}
""")
    exporter = Exporter("--redis-url", redis_db.url, "--targets-file", str(targets))
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus-multi-target.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    address = f"127.0.0.1:{exporter.port}"
    for job in config["scrape_configs"]:
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = address
        if job["job_name"] != "rq":
            job["static_configs"] = [{"targets": [address]}]
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    data = tempfile.mkdtemp(prefix="rq-exporter-prometheus-")
    port = free_port()
    prometheus = subprocess.Popen([binary, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr: str) -> dict[str, float]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                result = json.load(response)["data"]["result"]
        except OSError:
            return {}
        return {r["metric"].get("instance", ""): float(r["value"][1]) for r in result}

    try:
        wait_for(lambda: query('rq_up{job="rq"}') == {"orders": 1.0, "billing": 1.0}, timeout=30, interval=0.5,
                 what="Prometheus to scrape both targets through /probe")
        assert query('rq_jobs{job="rq", status="queued", queue="orders"}') == {"orders": 2.0}
        assert query('rq_jobs{job="rq", status="queued", queue="billing"}') == {"billing": 1.0}
        wait_for(lambda: query('rq_up{job="rq-exporter"}') == {address: 1.0}, timeout=15, interval=0.5,
                 what="the exporter's own /metrics")
    finally:
        stop_process(prometheus, 10)
        exporter.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_targets_get_no_credentials_they_do_not_name(tmp_path):
    """The command line's password, user and TLS files stay with the command line's Redis."""
    from rq_exporter_ng import targets
    from rq_exporter_ng.connection import password
    from rq_exporter_ng.settings import Settings

    ca = make_certs(tmp_path / "certs").ca
    base = Settings.model_validate({"redis_url": "rediss://main:6379/0", "redis_username": "cli-user",
                                    "redis_password": "cli-secret", "redis_tls_ca_file": str(ca),
                                    "redis_read_timeout": 0.75, "key_prefix": "app",
                                    "redis_tls_relax_x509_strict": True})
    found = targets.parse({"targets": {"other": {"redis_host": "other"},
                                       "own": {"redis_host": "own", "redis_password": "own-secret"},
                                       "managed": {"redis_url": "rediss://managed:6378/0",
                                                   "redis_tls_relax_x509_strict": True}}},
                          base, tmp_path)
    other, own = found["other"], found["own"]
    assert (password(other), other.redis_username, other.redis_tls_ca_file) == (None, None, None)
    assert not other.redis_tls_relax_x509_strict and found["managed"].redis_tls_relax_x509_strict
    assert password(own) == "own-secret" and own.redis_username is None
    assert other.redis_read_timeout == own.redis_read_timeout == 0.75  # the rest is inherited
    assert other.key_prefix == "app"


def test_yaml_merge_keys_share_settings_between_targets(tmp_path):
    """`<<: *anchor`, as YAML users share a block: the anchor's settings, the target's own over them."""
    from rq_exporter_ng import targets
    from rq_exporter_ng.loading import load

    path = tmp_path / "targets.yml"
    path.write_text("targets:\n"
                    "  orders: &shared {redis_host: shared, redis_db: 1, key_prefix: app}\n"
                    "  billing: {<<: *shared, redis_db: 2}\n"
                    "  reports:\n    <<: [*shared]\n    redis_host: other\n")
    found = targets.load(path, load([]))
    assert {name: (s.redis_host, s.redis_db, s.key_prefix) for name, s in found.items()} == {
        "orders": ("shared", 1, "app"), "billing": ("shared", 2, "app"), "reports": ("other", 1, "app")}
