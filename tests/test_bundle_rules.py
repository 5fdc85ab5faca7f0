"""The alert rules: generated from one config, valid for promtool, every alert unit-tested."""

from __future__ import annotations

import re

import pytest
import yaml
from bundle import PROMETHEUS, RULES, metric_names, promtool, rule_generator

from devkit import run
from rq_exporter.families.catalogue import BY_NAME
from support import ROOT, require_tool


def committed_rules() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"][0]["rules"]


def test_committed_rules_are_the_generated_ones():
    gen = rule_generator()
    assert RULES.read_text() == gen.render(gen.load_config()), "run `make bundle`"


def test_every_threshold_and_duration_comes_from_the_config():
    gen = rule_generator()
    config = gen.load_config()
    changed = gen.with_durations(config, for_="7s", window="13s")
    changed["selector"] = 'job="elsewhere"'
    changed["alerts"]["RQOldestJobTooOld"]["max_age_seconds"] = 4242
    rules = {r["alert"]: r for r in gen.rules(changed)["groups"][0]["rules"]}
    assert {r["for"] for r in rules.values()} == {"7s"}
    for name, rule in rules.items():
        assert 'job="rq"' not in rule["expr"] and 'job="elsewhere"' in rule["expr"], name
        if "window" in config["alerts"][name]:
            assert "[13s]" in rule["expr"] and "[10m]" not in rule["expr"], name
    assert "> 4242" in rules["RQOldestJobTooOld"]["expr"]


@pytest.mark.promtool
def test_promtool_check_rules_is_clean():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(committed_rules())} rules found" in result.stdout


@pytest.mark.promtool
def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "prometheus/tests/rq-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case():
    tests = yaml.safe_load((PROMETHEUS / "tests" / "rq-alerts.test.yml").read_text())["tests"]
    fires, silent = set(), set()
    for group in tests:
        for case in group["alert_rule_test"]:
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
    names = {r["alert"] for r in committed_rules()}
    assert fires == names
    assert silent == names


def test_alerts_follow_the_conventions():
    for rule in committed_rules():
        assert re.fullmatch(r"RQ(?:[A-Z][a-z]+)+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert "{{" not in rule["annotations"]["summary"], "summary stays static"
        assert "{{" in rule["annotations"]["description"], "description names what fired"
        assert rule["for"]


def test_rules_read_only_metrics_the_exporter_exposes():
    allowed = {"up"}
    for rule in committed_rules():
        for name in metric_names(rule["expr"]):
            assert name in BY_NAME or name in allowed, f"{rule['alert']} reads {name}, not in the catalogue"


@pytest.mark.promtool
def test_prometheus_and_alertmanager_configs_are_valid():
    for config in sorted(PROMETHEUS.glob("prometheus*.yml")):  # the bundle's and the multi-target example
        result = promtool("check", "config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr

    amtool = require_tool("amtool")
    result = run([amtool, "check-config", "prometheus/alertmanager.yml"], cwd=ROOT,
                 capture_output=True, text=True, idle=30)
    assert result.returncode == 0, result.stdout + result.stderr
