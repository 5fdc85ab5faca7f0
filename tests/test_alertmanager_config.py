"""The bundle's Alertmanager configurations: prometheus/alertmanager.yml (to the bundle's receiver)
and the ready-to-enable receivers of prometheus/alertmanager/*.yml, checked by the real amtool with
dummy secret files in place, routed by severity as the README says, rendering rq.tmpl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support import ROOT, require_tool

PROMETHEUS = ROOT / "prometheus"
DEFAULT = PROMETHEUS / "alertmanager.yml"
VARIANTS = sorted((PROMETHEUS / "alertmanager").glob("*.yml"))
SECRETS = "/etc/alertmanager/secrets/"  # where the variants read their secrets (compose mounts it)
SECRET_KEYS = ("api_url_file", "auth_password_file", "smtp_auth_password_file", "routing_key_file",
               "service_key_file", "credentials_file", "password_file")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def secret_files(node: object) -> list[str]:
    """Every *_file value of a config, wherever it is nested."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in SECRET_KEYS and isinstance(v, str)]
        return found + [f for v in node.values() for f in secret_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in secret_files(v)]
    return []


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("amtool"), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def installed(tmp_path) -> Path:
    """prometheus/ copied to tmp_path with every secret path pointing at a dummy file there."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS / "alertmanager", copy / "alertmanager")
    shutil.copy(DEFAULT, copy / "alertmanager.yml")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for variant in (copy / "alertmanager").glob("*.yml"):
        text = variant.read_text()
        for path in secret_files(yaml.safe_load(text)):
            (secrets / Path(path).name).write_text("dummy-secret\n")
        variant.write_text(text.replace(SECRETS, f"{secrets}/"))
    return copy


def test_there_is_a_variant_for_each_integration():
    integrations = {key for v in VARIANTS for r in load(v)["receivers"] for key in r if key.endswith("_configs")}
    assert {"slack_configs", "email_configs", "pagerduty_configs", "webhook_configs"} <= integrations


def test_every_secret_is_read_from_a_file_under_the_secrets_directory():
    for variant in VARIANTS:
        text = variant.read_text()
        files = secret_files(load(variant))
        assert files, variant.name
        assert all(f.startswith(SECRETS) for f in files), (variant.name, files)
        # No secret written in the file itself.
        for key in ("api_url:", "auth_password:", "routing_key:", "service_key:", "credentials:"):
            assert key not in text.replace("_file:", ""), (variant.name, key)


@pytest.mark.promtool
def test_amtool_accepts_every_variant_with_its_secret_files(installed):
    checked = 0
    for config in [installed / "alertmanager.yml", *sorted((installed / "alertmanager").glob("*.yml"))]:
        for path in secret_files(load(config)):
            assert Path(path).is_file(), (config.name, path)
        result = amtool("check-config", str(config))
        assert result.returncode == 0, (config.name, result.stdout + result.stderr)
        assert "1 templates" in result.stdout, (config.name, result.stdout)  # rq.tmpl found and parsed
        checked += 1
    assert checked == len(VARIANTS) + 1 >= 4


@pytest.mark.promtool
def test_critical_alerts_page_and_the_others_go_to_chat(installed):
    for variant in sorted((installed / "alertmanager").glob("*.yml")):
        def receivers(*labels: str, config: Path = variant) -> set[str]:
            result = amtool("config", "routes", "test", f"--config.file={config}", *labels)
            assert result.returncode == 0, result.stderr
            return set(result.stdout.strip().split(","))

        assert "page" in receivers("alertname=RQAllWorkersGone", "severity=critical"), variant.name
        for severity in ("warning", "info"):
            assert receivers("alertname=RQJobFailuresGrowing", f"severity={severity}") == {"chat"}, variant.name
    assert receivers("severity=critical", config=installed / "alertmanager.yml") == {"console"}


def test_variants_group_and_inhibit_as_the_bundle_does():
    default = load(DEFAULT)
    for variant in VARIANTS:
        config = load(variant)
        assert config["inhibit_rules"] == default["inhibit_rules"], variant.name
        for key in ("group_by", "group_wait", "group_interval", "repeat_interval"):
            assert config["route"][key] == default["route"][key], (variant.name, key)
        assert config["templates"] == ["rq.tmpl"], variant.name


def test_the_default_route_delivers_to_the_bundle_receiver():
    config = load(DEFAULT)
    (console,) = [r for r in config["receivers"] if r["name"] == config["route"]["receiver"]]
    (webhook,) = console["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert webhook["url"].startswith("http://rq-notifications:")  # the compose service
    assert not config["route"].get("routes")  # every alert, whatever its severity


@pytest.mark.promtool
def test_the_template_renders_summary_description_and_links():
    text = ('{{ template "rq.title" . }}|{{ template "rq.text" . }}|{{ template "rq.email.html" . }}')
    result = amtool("template", "render", f"--template.glob={PROMETHEUS / 'alertmanager' / 'rq.tmpl'}",
                    f"--template.text={text}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("|") == 2
    template = (PROMETHEUS / "alertmanager" / "rq.tmpl").read_text()
    for annotation in ("summary", "description", "runbook_url", "dashboard_url"):
        assert template.count(f".Annotations.{annotation}") >= 2, annotation  # text and HTML
