"""The compose stack, without a Docker engine: valid YAML, every file it builds from or mounts exists,
images pinned, the exporter image runs as non-root, and the Makefile drives it."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import sys
from pathlib import Path

import yaml

from support import ROOT

COMPOSE = ROOT / "docker-compose-rq-monitor.yml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict:
    return compose()["services"]


def test_stack_has_every_part():
    assert set(services()) >= {"redis", "rq-worker", "rq-producer", "rq-exporter", "prometheus",
                               "alertmanager", "grafana"}


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
    (the producer, the job functions the workers import) import nothing else, devkit included;
    demo/run.py, run from the repository root, is the one that may."""
    dockerfile = (ROOT / "demo" / "Dockerfile").read_text()
    assert re.search(r"^COPY demo \./demo$", dockerfile, re.M) and dockerfile.count("COPY ") == 1
    allowed = set(sys.stdlib_module_names) | {"rq", "redis", "demo"}
    for module in ("producer", "jobs", "__init__"):
        tree = ast.parse((ROOT / "demo" / f"{module}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert {name.split(".")[0] for name in imported} <= allowed, (module, imported)
    commands = [" ".join(services()[name]["command"]) for name in ("rq-worker", "rq-producer")]
    assert "demo.producer" in commands[1] and "demo.run" not in " ".join(commands)


def test_exporter_image_runs_as_a_non_root_user():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["rq-exporter"]' in lines
    assert "9726" in " ".join(services()["rq-exporter"]["ports"])


def test_services_reach_each_other_by_name():
    prometheus = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    targets += [t for am in prometheus["alerting"]["alertmanagers"] for c in am["static_configs"]
                for t in c["targets"]]
    for target in targets:
        assert target.split(":")[0] in services(), target
    command = " ".join(services()["rq-worker"]["command"])
    assert "redis://redis:6379" in command and "--with-scheduler" in command
    assert services()["rq-exporter"]["environment"]["RQ_EXPORTER_REDIS_URL"] == "redis://redis:6379/0"


def test_make_targets_drive_the_stack():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("start-rq-mon", "stop-rq-mon", "demo", "bundle"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    assert "docker-compose-rq-monitor.yml" in makefile
