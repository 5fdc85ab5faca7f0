"""Kubernetes manifests (no cluster here): valid YAML with the fields that matter, consistent with
each other and with the exporter, and the PrometheusRule generated from the bundle's rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devkit import run
from rq_exporter_ng import healthcheck
from rq_exporter_ng.settings import ENV_PREFIX, Settings
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
    examples = {p.name for p in K8S.glob("*.example.yaml")}
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"} - examples


def test_the_secret_is_an_example_kustomize_never_applies(deployment, container):
    """`kubectl apply -k k8s/` must not overwrite the Secret the user made: it is only an example."""
    listed = _one("kustomization.yaml", "Kustomization")["resources"]
    assert all(d["kind"] != "Secret" for name in listed for d in _docs(name))
    secret = _one("secret.example.yaml", "Secret")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "redis-secret")
    names = {volume["secret"]["secretName"]} | {v["valueFrom"]["secretKeyRef"]["name"]
                                                  for v in container["env"] if "valueFrom" in v}
    assert names == {secret["metadata"]["name"]}
    assert set(secret["stringData"]) == {"url", "password"}
    # The password may be left out of the Secret: the volume is optional (the exporter then sends
    # no AUTH: test_the_container_settings_run_the_real_exporter).
    assert volume["secret"]["optional"] is True
    assert "kubectl create secret generic rq-exporter-redis" in (K8S / "secret.example.yaml").read_text()


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


def test_the_image_is_named_in_the_kustomization_and_the_memory_request_covers_the_peaks(container):
    """`kustomize edit set image rq-exporter=REGISTRY/...` (README, Kubernetes) rewrites the entry
    whose name is the Deployment's image; the request is at least the largest peak RSS the README
    documents (~96 MB at 5,000 jobs/s), so a node is not chosen for less."""
    images = _one("kustomization.yaml", "Kustomization")["images"]
    assert [image["name"] for image in images] == [container["image"].split(":")[0]]
    request = container["resources"]["requests"]["memory"]
    assert request.endswith("Mi") and int(request[:-2]) * 2**20 >= 96 * 10**6


def test_probes_run_the_exporters_own_check_as_the_dockerfile_does(container):
    """`rq-exporter --healthcheck` GETs /healthz wherever and however the exporter serves (another
    port, HTTPS): tests/test_healthcheck.py; here, that the probes and the image use it."""
    port = container["ports"][0]
    assert port["containerPort"] == Settings.model_fields["port"].default
    dockerfile = (ROOT / "Dockerfile").read_text()
    (line,) = [li for li in dockerfile.splitlines() if li.strip().startswith("CMD [")]
    for probe in ("livenessProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command == ["rq-exporter", "--healthcheck"] == json.loads(line.strip().removeprefix("CMD "))


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


def _secret_volume(directory: Path, keys: dict[str, str]) -> None:
    """A Secret volume as kubelet lays it out: the keys' files in a timestamped directory, linked
    through ..data."""
    data = directory / "..2026_12_04_10_00_00.1"
    data.mkdir(parents=True)
    (directory / "..data").symlink_to(data.name)
    for key, value in keys.items():
        (data / key).write_text(value)
        (directory / key).symlink_to(f"..data/{key}")


@pytest.mark.redis
@pytest.mark.parametrize("secret_password", ["k8s-secret", "", None], ids=["password", "empty password",
                                                                           "no password key"])
def test_the_container_settings_run_the_real_exporter(container, own_redis, tmp_path, secret_password):
    """The Deployment's arguments and variables are settings the exporter accepts and uses, with a
    password in the Secret or none (an empty key, or no key: a Redis without AUTH); its probe
    command answers for it."""
    if secret_password:
        own_redis.client().config_set("requirepass", secret_password)
    secret_dir = tmp_path / "secret"
    _secret_volume(secret_dir, {"url": own_redis.url} | ({} if secret_password is None else
                                                        {"password": secret_password}))
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
        probe = container["livenessProbe"]["exec"]["command"]
        cmdline = Path(f"/proc/{exporter.process.pid}/cmdline")
        assert probe[:2] == ["rq-exporter", "--healthcheck"]
        assert healthcheck.main(probe[2:], main_process=cmdline) == 0
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
