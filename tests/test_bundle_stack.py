"""The compose stack, without a Docker engine (nor the compose client here): valid YAML, every file it
builds from or mounts exists, images pinned, the exporter image runs as non-root, the Makefile drives
it, and it works as an overlay on an application's compose file. ${VAR:-default} is read as compose
reads it with VAR unset."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from bundle import promtool

import devkit
from support import ROOT

COMPOSE = ROOT / "docker-compose-rq-monitor.yml"
VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")
# the demo app, behind the profile "demo"
DEMO = {"rq-demo-redis", "rq-worker", "rq-worker-low", "rq-producer", "rq-cron", "rq-scheduler"}


def interpolate(node):
    """The compose file's values with every variable unset (its default used), as compose does."""
    if isinstance(node, dict):
        return {key: interpolate(value) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value) for value in node]
    if isinstance(node, str):
        assert "$" not in VARIABLE.sub("", node), f"a variable without a default: {node}"
        return VARIABLE.sub(lambda m: m.group(2), node)
    return node


def compose() -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


def services() -> dict:
    return compose()["services"]


def test_stack_has_every_part():
    assert set(services()) >= {"rq-demo-redis", "rq-worker", "rq-producer", "rq-cron", "rq-scheduler", "rq-exporter",
                               "rq-prometheus", "rq-alertmanager", "rq-notifications", "rq-grafana"}


def test_images_are_pinned():
    for name, service in services().items():
        if "image" in service:
            image = service["image"]
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+[\w.-]*", image), (name, image)
    for dockerfile in dockerfiles():
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                assert re.fullmatch(r"FROM [\w./-]+:\d+\.\d+\.\d+[\w.-]*", line), (dockerfile, line)


def test_every_mounted_file_exists():
    mounted = 0
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), (name, source)
                mounted += 1
    assert mounted >= 4


def dockerfiles() -> list[Path]:
    found = []
    for name, service in services().items():
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert context.is_dir() and dockerfile.is_file(), (name, build)
            found.append(dockerfile)
    return found


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_dockerfile_copy_sources_exist_in_the_build_context():
    copied = 0
    for dockerfile in dockerfiles():
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                *sources, _ = shlex.split(line)[1:]
                for source in sources:
                    assert (ROOT / source).exists(), (dockerfile.name, source)
                    assert not dockerignored(source), (dockerfile.name, source, ".dockerignore drops it")
                    copied += 1
    assert copied >= 4


def test_the_demo_image_needs_only_what_it_installs():
    """The demo image holds demo/ alone (demo/Dockerfile), with rq and redis: the modules it runs
    (the producer, the job functions the workers import, the notification receiver) import nothing
    else, devkit included;
    demo/run.py, run from the repository root, is the one that may."""
    dockerfile = (ROOT / "demo" / "Dockerfile").read_text()
    assert re.search(r"^COPY demo \./demo$", dockerfile, re.M) and dockerfile.count("COPY ") == 1
    allowed = set(sys.stdlib_module_names) | {"rq", "redis", "demo", "rq_scheduler"}
    assert re.search(r'"rq-scheduler==[\d.]+"', dockerfile)  # rqscheduler, and demo/schedules.py's seeding
    for module in ("producer", "jobs", "receiver", "schedules", "cron_config", "__init__"):
        tree = ast.parse((ROOT / "demo" / f"{module}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert {name.split(".")[0] for name in imported} <= allowed, (module, imported)
    commands = [" ".join(services()[name]["command"]) for name in ("rq-worker", "rq-producer")]
    assert "demo.producer" in commands[1] and "demo.run" not in " ".join(commands)
    # The schedules as make demo runs them: the same cron module, the same seeding (demo/schedules.py).
    from demo import schedules
    cron = services()["rq-cron"]["command"]
    assert cron[:3] == ["rq", "cron", schedules.CRON_CONFIG] and (ROOT / "demo" / "cron_config.py").exists()
    scheduler = services()["rq-scheduler"]["command"]
    assert scheduler[:2] == ["sh", "-c"] and re.fullmatch(
        r"python -m demo\.schedules --seed (\S+) && exec rqscheduler --url \1 --interval \d+", scheduler[2])
    receiver = services()["rq-notifications"]
    assert receiver["build"]["dockerfile"] == "demo/Dockerfile"
    assert receiver["command"][:3] == ["python", "-m", "demo.receiver"] and "0.0.0.0" in receiver["command"]


@pytest.mark.workers
def test_the_scheduler_service_seeds_its_jobs_once(redis_db):
    """The rq-scheduler service's seeding (`python -m demo.schedules --seed URL`), run for real: the
    demo's three rq-scheduler jobs, and none more when the container starts again."""
    from rq_scheduler import Scheduler

    for _ in range(2):
        result = devkit.run([sys.executable, "-m", "demo.schedules", "--seed", redis_db.url], cwd=ROOT,
                            capture_output=True, text=True, idle=30)
        assert result.returncode == 0, result.stderr
    jobs = list(Scheduler(connection=redis_db.client(), queue_name="low").get_jobs())
    assert [job.func_name for job in jobs] == ["demo.jobs.process"] * 3
    assert sum(1 for job in jobs if job.meta.get("cron_string")) == 2


@pytest.mark.workers
@pytest.mark.parametrize(("url", "code", "said"), [
    ("foo://x", 2, "error: --seed: Redis URL must specify"),
    ("redis://127.0.0.1:1/0", 1, "demo.schedules: cannot seed redis://127.0.0.1:1/0:"),
])
def test_the_seeding_says_what_is_wrong_in_one_line(url, code, said):
    result = devkit.run([sys.executable, "-m", "demo.schedules", "--seed", url], cwd=ROOT,
                        capture_output=True, text=True, idle=30)
    assert result.returncode == code and said in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_exporter_image_runs_as_a_non_root_user():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["rq-exporter"]' in lines
    assert "9726:9726" in services()["rq-exporter"]["ports"]


def test_services_reach_each_other_by_name():
    for config in ("prometheus.yml", "prometheus-multi-target.yml"):
        prometheus = yaml.safe_load((ROOT / "prometheus" / config).read_text())
        targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
                   if job["job_name"] != "rq" or "relabel_configs" not in job]  # /probe names are no hosts
        targets += [r["replacement"] for job in prometheus["scrape_configs"] for r in job.get("relabel_configs", [])
                    if r.get("target_label") == "__address__"]
        targets += [t for am in prometheus["alerting"]["alertmanagers"] for c in am["static_configs"]
                    for t in c["targets"]]
        assert len(targets) >= 2, config
        for target in targets:
            assert target.split(":")[0] in services(), (config, target)
    alertmanager = yaml.safe_load((ROOT / "prometheus/alertmanager.yml").read_text())
    hooks = [urlsplit(h["url"]) for r in alertmanager["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and all(h.hostname in services() for h in hooks)
    assert {str(h.port) for h in hooks} == {services()["rq-notifications"]["command"][-1]}
    grafana = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert {urlsplit(d["url"]).hostname for d in grafana["datasources"]} == {"rq-prometheus"}
    command = " ".join(services()["rq-worker"]["command"])
    assert "redis://rq-demo-redis:6379" in command and "--with-scheduler" in command
    assert services()["rq-exporter"]["environment"]["RQ_EXPORTER_REDIS_URL"] == "redis://rq-demo-redis:6379/0"


def test_the_demo_app_is_behind_a_profile_and_the_exporter_reads_rq_redis_url():
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {name for name, s in services().items() if s.get("profiles")} == DEMO
    assert all(services()[name]["profiles"] == ["demo"] for name in DEMO)
    assert raw["rq-exporter"]["environment"]["RQ_EXPORTER_REDIS_URL"] == "${RQ_REDIS_URL:-redis://rq-demo-redis:6379/0}"
    # Without the profile the demo Redis is absent: the exporter must not require it.
    for name, service in services().items():
        depends = service.get("depends_on", [])
        for target in depends:
            if target in DEMO and name not in DEMO:
                assert depends[target]["required"] is False, (name, target)


def test_the_demo_programs_wait_for_redis_to_answer():
    """RQ's programs (and redis-py) exit when Redis refuses them at start-up, and no service restarts:
    each waits for the demo Redis' health check, not just for its container to start."""
    redis = services()["rq-demo-redis"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in DEMO - {"rq-demo-redis"}:
        assert services()[name]["depends_on"] == {"rq-demo-redis": {"condition": "service_healthy"}}, name


def test_the_file_overlays_an_application_compose_file():
    """As `docker compose -f docker-compose.yml -f docker-compose-rq-monitor.yml`: no project name
    of its own (it would rename the app's project), no service merging with a usual app service,
    and every path under RQ_MONITOR_DIR (compose resolves paths from the first file's directory)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    assert "name" not in raw
    assert all(name.startswith("rq-") for name in raw["services"])
    text = COMPOSE.read_text()
    paths = [v for s in raw["services"].values() for v in s.get("volumes", [])]
    paths += [s["build"]["context"] for s in raw["services"].values() if "build" in s]
    assert paths and all(p.startswith("${RQ_MONITOR_DIR:-.}") for p in paths), paths
    assert "RQ_REDIS_URL=" in text  # the overlay's use, shown in the file's head
    readme = (ROOT / "README.md").read_text()
    assert "docker compose -f docker-compose.yml -f" in readme and "RQ_REDIS_URL=" in readme


def test_alertmanager_runs_the_bundle_config_or_a_variant():
    service = services()["rq-alertmanager"]
    mounts = dict(v.split(":")[:2] for v in service["volumes"])
    (config,) = [a.split("=", 1)[1] for a in service["command"] if a.startswith("--config.file=")]
    (bundle,) = [target for source, target in mounts.items() if source == "./prometheus"]
    assert config.startswith(bundle + "/")
    assert (ROOT / "prometheus" / config.removeprefix(bundle + "/")) == ROOT / "prometheus/alertmanager.yml"
    assert mounts["./alertmanager-secrets"] == "/etc/alertmanager/secrets"
    raw = yaml.safe_load(COMPOSE.read_text())["services"]["rq-alertmanager"]["command"]
    assert "${RQ_ALERTMANAGER_CONFIG:-alertmanager.yml}" in " ".join(raw)
    for variant in (ROOT / "prometheus" / "alertmanager").glob("*.yml"):
        assert "/etc/alertmanager/secrets/" in variant.read_text(), variant.name


@pytest.mark.promtool
def test_both_prometheus_configs_load_the_rules_and_alertmanager():
    for config in ("prometheus.yml", "prometheus-multi-target.yml"):
        result = promtool("check", "config", f"prometheus/{config}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS: 2 rule files found" in result.stdout, (config, result.stdout)  # recording, alerts
        loaded = yaml.safe_load((ROOT / "prometheus" / config).read_text())
        assert loaded["rule_files"] == ["rules/*.yml"] and loaded["alerting"]["alertmanagers"], config


def test_make_targets_drive_the_stack():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("start-rq-mon", "stop-rq-mon", "demo", "bundle"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert re.search(r"^MON := -p rq-monitor -f docker-compose-rq-monitor.yml --profile demo$", makefile, re.M)
    assert "$(DEMO_ARGS)" in makefile
