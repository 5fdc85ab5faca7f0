"""Kubernetes manifests (no cluster here): valid YAML with the fields that matter, consistent with
each other and with the exporter, and the PrometheusRule generated from the bundle's rules."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from devkit import run
from rq_exporter.settings import ENV_PREFIX, Settings
from support import ROOT, Exporter, require_tool

K8S = ROOT / "k8s"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _one(name: str, kind: str) -> dict:
    found = [d for d in _docs(name) if d["kind"] == kind]
    assert len(found) == 1, (name, kind)
    return found[0]


@pytest.fixture(scope="module")
def deployment() -> dict:
    return _one("deployment.yaml", "Deployment")


@pytest.fixture(scope="module")
def container(deployment) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_every_manifest_is_yaml_with_kind_and_name():
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"], path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"] == "rq-exporter" or doc["kind"] == "Secret", path
    listed = set(_one("kustomization.yaml", "Kustomization")["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_deployment_is_locked_down(deployment, container):
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()
    # The Dockerfile's user, so that the image's files are readable.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"USER {pod['securityContext']['runAsUser']}" in dockerfile


def test_probes_hit_healthz_on_the_metrics_port(container):
    port = container["ports"][0]
    assert port["containerPort"] == Settings.model_fields["port"].default
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert get["port"] in (port["name"], port["containerPort"])


def test_service_and_servicemonitor_point_at_the_pods(deployment, container):
    service = _one("service.yaml", "Service")
    monitor = _one("servicemonitor.yaml", "ServiceMonitor")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (container["ports"][0]["name"], container["ports"][0]["containerPort"])
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"
    # The alert rules select one job: the ServiceMonitor must give the series that job label.
    rules_text = (ROOT / "prometheus" / "rules" / "rq-recording.yml").read_text()
    rules_text += (ROOT / "prometheus" / "rules" / "rq-alerts.yml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', rules_text))
    (job,) = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    assert jobs == {job}


def test_prometheusrule_is_generated_from_the_bundle_rules():
    result = subprocess.run([sys.executable, "scripts/k8s_rules.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rule = _one("prometheusrule.yaml", "PrometheusRule")
    # The recording rules and the alerts that read them, in one resource.
    bundle = [group for name in ("rq-recording.yml", "rq-alerts.yml")
              for group in yaml.safe_load((ROOT / "prometheus" / "rules" / name).read_text())["groups"]]
    assert rule["spec"]["groups"] == bundle


@pytest.mark.promtool
def test_prometheusrule_groups_pass_promtool(tmp_path):
    promtool = require_tool("promtool")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _one("prometheusrule.yaml", "PrometheusRule")["spec"]["groups"]}))
    result = run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, idle=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.redis
def test_the_container_settings_run_the_real_exporter(container, own_redis, tmp_path):
    """The Deployment's arguments and variables are settings the exporter accepts and uses."""
    own_redis.client().config_set("requirepass", "k8s-secret")
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "password").write_text("k8s-secret")
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "redis-secret")
    args = [a.replace(mount, str(secret_dir)) for a in container["args"]]
    env = {}
    for variable in container["env"]:
        if variable["name"].startswith(ENV_PREFIX):
            field = variable["name"].removeprefix(ENV_PREFIX).lower()
            assert field in Settings.model_fields, variable["name"]
            env[variable["name"]] = own_redis.url if field == "redis_url" else variable.get("value", "")
    exporter = Exporter(*args, env=env)
    try:
        assert exporter.scrape().value("rq_up") == 1
    finally:
        log = exporter.stop()
    assert "k8s-secret" not in log
    assert log.lstrip().startswith("{")  # --log-format=json


def test_the_kube_prometheus_stack_option_labels_what_its_prometheus_selects():
    """k8s-kube-prometheus-stack/ (beside k8s/: kustomize refuses an overlay inside its base): the
    base plus a release label on the ServiceMonitor and the PrometheusRule (the JSON patches checked
    against the manifests they target; `kubectl kustomize` renders them so, run by hand)."""
    overlay = yaml.safe_load((ROOT / "k8s-kube-prometheus-stack" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../k8s"]
    labelled = {}
    for entry in overlay["patches"]:
        target = entry["target"]
        (op,) = yaml.safe_load(entry["patch"])
        assert (op["op"], op["path"]) == ("add", "/metadata/labels/release")
        name = {"ServiceMonitor": "servicemonitor.yaml", "PrometheusRule": "prometheusrule.yaml"}[target["kind"]]
        doc = _one(name, target["kind"])
        assert doc["metadata"]["name"] == target["name"] and doc["apiVersion"].startswith(target["group"] + "/")
        assert isinstance(doc["metadata"]["labels"], dict)  # "add" needs the labels map to exist
        labelled[target["kind"]] = op["value"]
    assert set(labelled) == {"ServiceMonitor", "PrometheusRule"} and len(set(labelled.values())) == 1
