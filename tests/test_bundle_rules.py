"""The alert and recording rules: generated from one config, valid for promtool, every alert and
every recorded series unit-tested."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from bundle import PROMETHEUS, RECORDING, RULE_TESTS, RULES, metric_names, promtool, recorded_names, rule_generator

from devkit import run
from rq_exporter_ng.families.catalogue import BY_NAME
from support import ROOT, require_tool


def committed_rules() -> list[dict]:
    """Every alerting rule of rq-alerts.yml (its groups: the threshold alerts, the burn-rate alerts)."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def recording_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RECORDING.read_text())["groups"] for rule in group["rules"]]


def unit_tests() -> dict[str, list[dict]]:
    return {path.name: yaml.safe_load(path.read_text())["tests"] for path in sorted(RULE_TESTS.glob("*.test.yml"))}


def test_committed_rules_are_the_generated_ones():
    gen = rule_generator()
    config = gen.load_config()
    assert RULES.read_text() == gen.render(config), "run `make bundle`"
    assert RECORDING.read_text() == gen.render_recording(config), "run `make bundle`"
    # The command `make bundle` runs says so too, naming the stale file.
    check = subprocess.run([sys.executable, "prometheus/generate_rules.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_the_check_names_a_stale_file(tmp_path, monkeypatch, capsys):
    from bundlegen import rules

    stale = tmp_path / "rq-recording.yml"
    stale.write_text(RECORDING.read_text().replace("rate5m", "rate6m", 1))
    monkeypatch.setattr(rules, "RECORDING_OUTPUT", stale)
    monkeypatch.setattr(rules, "ROOT", tmp_path)
    monkeypatch.setattr(rules, "OUTPUT", tmp_path / "rq-alerts.yml")
    (tmp_path / "rq-alerts.yml").write_text(RULES.read_text())
    assert rules.main(["--check"]) == 1
    assert capsys.readouterr().err == "rq-recording.yml stale: run `make bundle`\n"


def test_every_threshold_and_duration_comes_from_the_config():
    gen = rule_generator()
    config = gen.load_config()
    changed = gen.with_durations(config, for_="7s", window="13s",
                                 slo_windows={"5m": "11s", "30m": "17s", "1h": "19s", "6h": "23s", "3d": "29s",
                                              "30d": "31s"}, slo_interval="3s")
    changed["selector"] = 'job="elsewhere"'
    changed["alerts"]["RQOldestJobTooOld"]["max_age_seconds"] = 4242
    changed["slo"]["burn_rates"][0]["burn_rate"] = 13
    groups = gen.rules(changed)["groups"]
    rules = {r["alert"]: r for r in groups[0]["rules"]}
    burning = groups[1]["rules"]
    recording = gen.recording_rules(changed)["groups"]
    assert {r["for"] for r in [*rules.values(), *burning]} == {"7s"}
    for name, rule in rules.items():
        assert 'job="rq"' not in rule["expr"], name
        if "window" in config["alerts"][name]:
            assert "13s" in rule["expr"] and "10m" not in rule["expr"] and "15m" not in rule["expr"], name
    # The recorded series read the selector; the alerts that read them fire on those.
    for rule in [r for g in recording for r in g["rules"]]:
        assert 'job="rq"' not in rule["expr"], rule["record"]
    assert 'job="elsewhere"' in recording[0]["rules"][0]["expr"]
    assert "> 4242" in rules["RQOldestJobTooOld"]["expr"]
    assert [(r["labels"]["long"], r["labels"]["short"]) for r in burning[:3]] == [("19s", "11s"), ("23s", "17s"),
                                                                                 ("29s", "23s")]
    assert "> 13\n" in burning[0]["expr"] + "\n" and "ratio_rate19s" in burning[0]["expr"]
    period = recording[1]
    assert period["interval"] == "3s" and "[31s]" in period["rules"][0]["expr"]
    assert not [r for g in recording for r in g["rules"] if re.search(r"\[(5m|30m|1h|6h|3d|30d)\]", r["expr"])
                and "rate5m" not in r["record"] and "_le:" not in r["record"] and "quantile" not in r["record"]]


@pytest.mark.promtool
def test_promtool_check_rules_is_clean():
    result = promtool("check", "rules", str(RECORDING), str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(recording_rules())} rules found" in result.stdout
    assert f"SUCCESS: {len(committed_rules())} rules found" in result.stdout


@pytest.mark.promtool
@pytest.mark.parametrize("name", sorted(path.name for path in RULE_TESTS.glob("*.test.yml")))
def test_promtool_unit_tests_pass(name):
    result = promtool("test", "rules", f"prometheus/tests/{name}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case():
    fires, silent = set(), set()
    for tests in unit_tests().values():
        for group in tests:
            for case in group.get("alert_rule_test", []):
                (fires if case["exp_alerts"] else silent).add(case["alertname"])
    names = {r["alert"] for r in committed_rules()}
    assert fires == names
    assert silent == names


def test_every_burn_rate_window_fires_in_a_case_and_each_is_silent_at_1x():
    """Each (long, short) window pair of each burn-rate alert fires in some case; each alert has a
    case at 1x and below where no window fires."""
    gen = rule_generator()
    windows = {(name, b.long, b.short) for name in gen.SLO_ALERTS.values()
               for b in gen.slo_config(gen.load_config()).burn_rates}
    fired, silent_at_1x = set(), set()
    for tests in unit_tests().values():
        for group in tests:
            for case in group.get("alert_rule_test", []):
                for alert in case["exp_alerts"]:
                    labels = alert["exp_labels"]
                    if case["alertname"] in gen.SLO_ALERTS.values():
                        fired.add((case["alertname"], labels["long"], labels["short"]))
                if "1x and below" in group["name"] and not case["exp_alerts"]:
                    silent_at_1x.add(case["alertname"])
    assert windows <= fired
    assert silent_at_1x == set(gen.SLO_ALERTS.values())


def test_recording_rules_follow_the_naming_convention_and_each_is_unit_tested():
    tested = {name for tests in unit_tests().values() for group in tests
              for case in group.get("promql_expr_test", []) for name in metric_names(case["expr"])}
    tested |= {re.sub(r"\{.*", "", sample["labels"]) for tests in unit_tests().values() for group in tests
               for case in group.get("promql_expr_test", []) for sample in case["exp_samples"]}
    read_by_alerts = {name for rule in committed_rules() for name in metric_names(rule["expr"]) if ":" in name}
    for name in recorded_names():
        level, metric, operations = name.split(":")
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", level) and metric.startswith("rq_") and operations, name
        assert name in tested or name in read_by_alerts, f"{name}: no promtool case reads it"


def test_alerts_read_only_recorded_series_the_recording_rules_define():
    recorded = recorded_names()
    for rule in committed_rules():
        for name in metric_names(rule["expr"]):
            if ":" in name:
                assert name in recorded, f"{rule['alert']} reads {name}, which rq-recording.yml does not record"
    # In a group, a rule reads only what earlier rules (or other groups) record.
    groups = yaml.safe_load(RECORDING.read_text())["groups"]
    for group in groups:
        seen: set[str] = set()
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                if ":" in name:
                    assert name in seen or name not in {r["record"] for r in group["rules"]}, (rule["record"], name)
            seen.add(rule["record"])


def test_alerts_follow_the_conventions():
    for rule in committed_rules():
        assert re.fullmatch(r"RQ(?:[A-Z][a-z]+)+", rule["alert"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert "{{" not in rule["annotations"]["summary"], "summary stays static"
        assert "{{" in rule["annotations"]["description"], "description names what fired"
        assert rule["for"]


def test_rules_read_only_metrics_the_exporter_exposes():
    allowed = {"up"} | recorded_names()
    for rule in committed_rules() + recording_rules():
        for name in metric_names(rule["expr"]):
            assert name in BY_NAME or name in allowed, \
                f"{rule.get('alert') or rule['record']} reads {name}, not in the catalogue"


@pytest.mark.promtool
def test_prometheus_and_alertmanager_configs_are_valid():
    for config in sorted(PROMETHEUS.glob("prometheus*.yml")):  # the bundle's and the multi-target example
        result = promtool("check", "config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr

    amtool = require_tool("amtool")
    result = run([amtool, "check-config", "prometheus/alertmanager.yml"], cwd=ROOT,
                 capture_output=True, text=True, idle=30)
    assert result.returncode == 0, result.stdout + result.stderr


# --- a mistake in alerts-config.yml: one line naming it, exit 2, nothing written ---------------------

def _set(path: str, value):
    """A change to the config: the value at a dotted path (None: the key removed)."""
    def change(config: dict) -> None:
        *parents, key = path.split(".")
        node = config
        for parent in parents:
            node = node[int(parent) if isinstance(node, list) else parent]
        if value is None:
            del node[key]
        else:
            node[key] = value
    return change


BAD_CONFIGS = {
    "alerts.RQOldestJobTooOld.max_age_seconds: must be a number, 0 or more, got '10m'":
        _set("alerts.RQOldestJobTooOld.max_age_seconds", "10m"),
    "alerts.RQCronJobLate.grace_seconds: must be a number, 0 or more, got -1": _set("alerts.RQCronJobLate.grace_seconds", -1),
    "alerts.RQJobFailuresGrowing.max_failures: must be a number, 0 or more, got True":
        _set("alerts.RQJobFailuresGrowing.max_failures", True),
    "alerts.RQRedisMemoryNearLimit.max_ratio: must be a ratio from 0 to 1, got 90":
        _set("alerts.RQRedisMemoryNearLimit.max_ratio", 90),
    "alerts.RQRedisEvictingKeys.window: not a Prometheus duration (such as 5m, 1h30m, 30d): '5 minutes'":
        _set("alerts.RQRedisEvictingKeys.window", "5 minutes"),
    # Prometheus' grammar: each unit once, the largest first; a window longer than 0
    "alerts.RQRedisEvictingKeys.window: not a Prometheus duration (such as 5m, 1h30m, 30d): '30s5m'":
        _set("alerts.RQRedisEvictingKeys.window", "30s5m"),
    "alerts.RQJobFailureRatioHigh.window: not a Prometheus duration (such as 5m, 1h30m, 30d): '1h1h'":
        _set("alerts.RQJobFailureRatioHigh.window", "1h1h"),
    "alerts.RQRedisEvictingKeys.window: must be longer than 0, got '0m'": _set("alerts.RQRedisEvictingKeys.window", "0m"),
    "slo.burn_rates[0].short: must be longer than 0, got '0s'": _set("slo.burn_rates.0.short", "0s"),
    "the whole file: unknown keys instance_in_legend": _set("instance_in_legend", True),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got None":
        _set("selector", None),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got ['job=\"rq\"']":
        _set("selector", ['job="rq"']),
    "instance_in_legends: must be true or false, got 'yes'": _set("instance_in_legends", "yes"),
    "runbook_url: must be a URL (or empty), got 3": _set("runbook_url", 3),
    "alerts.RQExporterDown.for: not a Prometheus duration": _set("alerts.RQExporterDown.for", 5),
    "alerts.RQExporterDown.severity: must be critical, warning or info, got 'page'":
        _set("alerts.RQExporterDown.severity", "page"),
    "alerts.RQRedisEvictingKeys: missing window": _set("alerts.RQRedisEvictingKeys.window", None),
    "alerts.RQExporterDown: missing for": _set("alerts.RQExporterDown.for", None),
    "alerts.RQOldestJobTooOld: unknown keys max_age": _set("alerts.RQOldestJobTooOld.max_age", 600),
    "alerts: unknown alerts RQSomethingElse": _set("alerts.RQSomethingElse", {"severity": "info", "for": "1m"}),
    "alerts: missing alerts RQExporterDown": _set("alerts.RQExporterDown", None),
    "alerts.RQExporterDown: expected a mapping of settings": _set("alerts.RQExporterDown", "critical"),
    "cluster_label: 'two words' is not a Prometheus label name": _set("cluster_label", "two words"),
    # Each of these used to end in a traceback, or in rules or dashboards that Prometheus or Grafana refuse.
    "cluster_label: 123 is not a Prometheus label name": _set("cluster_label", 123),
    "cluster_label: '__name__' is reserved": _set("cluster_label", "__name__"),
    "the whole file: unknown keys 1 ": lambda config: config.__setitem__(1, "x"),
    # YAML 1.1 reads `on:` as the key True
    "alerts.RQExporterDown: unknown keys True": lambda config: config["alerts"]["RQExporterDown"].__setitem__(True, 1),
    "alerts: not a mapping": _set("alerts", []),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got 'job=rq'":
        _set("selector", "job=rq"),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got '{job=\"rq\"}'":
        _set("selector", '{job="rq"}'),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got 'job=\"rq\",'":
        _set("selector", 'job="rq",'),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got 'rq'": _set("selector", "rq"),
    "alerts.RQRedisEvictingKeys.window: longer than Prometheus can hold (~292y), got '300y'":
        _set("alerts.RQRedisEvictingKeys.window", "300y"),
    "alerts.RQRedisEvictingKeys.window: not a Prometheus duration (such as 5m, 1h30m, 30d): '\uff15m'":
        _set("alerts.RQRedisEvictingKeys.window", "\uff15m"),
    "alerts.RQCronJobLate.grace_seconds: must be a number, 0 or more, got inf":
        _set("alerts.RQCronJobLate.grace_seconds", float("inf")),
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got 'job=\"rq\"\\xa0'":
        _set("selector", 'job="rq"\u00a0'),  # a no-break space: PromQL's whitespace is ASCII
    "selector: must be label matchers such as 'job=\"rq\"' (commas between, no braces), got 'job=\"a\\\\q\"'":
        _set("selector", 'job="a\\q"'),  # an escape PromQL does not have
    "alerts.RQJobFailuresGrowing.max_failures: must be a number, 0 or more, got 1000":
        _set("alerts.RQJobFailuresGrowing.max_failures", 10**400),  # past a float: YAML takes it
    "runbook_url: must not hold # or {{ (the rules add their own)": _set("runbook_url", "https://wiki/rq#runbooks"),
    "dashboard_url: must not hold ? or # or {{ (the rules add their own)": _set("dashboard_url", "http://g/d?orgId=2"),
    "dashboard_url: must not hold ? or # or {{": _set("dashboard_url", "http://g/{{ $labels.env }}/d"),
}


@pytest.mark.parametrize("expected", BAD_CONFIGS)
def test_a_bad_setting_is_one_line_naming_it(expected):
    gen = rule_generator()
    config = gen.load_config()
    BAD_CONFIGS[expected](config)
    for render in (gen.render, gen.render_recording):
        with pytest.raises(gen.ConfigError) as stopped:
            render(config)
        assert str(stopped.value).startswith(f"alerts-config.yml: {expected}"), str(stopped.value)
        assert "\n" not in str(stopped.value)


@pytest.mark.parametrize("text, expected", [
    ("alerts: {RQExporterDown: {severity: critical, for: 5m}\n", "alerts-config.yml: line 2: not valid YAML"),
    ("- a list\n", "alerts-config.yml: the whole file: expected a mapping"),
    ("selector: 'job=\"rq\"'\nalerts:\n  RQExporterDown:\n    severity: critical\n    for: 5m\n",
     "alerts-config.yml: alerts: missing alerts"),
    # A mistake only the dashboards read stops the rules' generator too (make bundle runs it first).
    ("selector: 'job=\"rq\"'\ninstance_in_legends: 1\n", "alerts-config.yml: instance_in_legends: must be true or"),
])
def test_both_generators_exit_2_with_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, text, expected):
    """`make bundle` on a bad alerts-config.yml: the rules' and the dashboards' generators each say
    what is wrong in one line and exit 2, and the committed files are left as they were."""
    from bundlegen import config, dashboards, rules

    bad = tmp_path / "alerts-config.yml"
    bad.write_text(text)
    before = {p: p.read_text() for p in (RULES, RECORDING, *sorted((ROOT / "dashboards").glob("*.json")))}
    monkeypatch.setattr(config, "CONFIG", bad)
    for main in (rules.main, dashboards.main):
        assert main([]) == 2
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, err
    assert {p: p.read_text() for p in before} == before


@pytest.mark.promtool
@pytest.mark.parametrize("edit", [
    {"selector": 'job="rq", env=~"prod|stage"'},
    {"selector": "job='rq',env!=`test`"},
    {"for": 0},  # YAML's number 0: Prometheus reads it as "0"
    {"max_ratio": 0},  # any failure at all
    {"window": "1w"},
])
def test_valid_edits_generate_rules_promtool_takes(tmp_path, edit):
    gen = rule_generator()
    config = gen.load_config()
    if "selector" in edit:
        config["selector"] = edit["selector"]
    for key in ("for", "window"):
        if key in edit:
            config["alerts"]["RQRedisEvictingKeys"][key] = edit[key]
    if "max_ratio" in edit:
        config["alerts"]["RQRedisMemoryNearLimit"]["max_ratio"] = edit["max_ratio"]
    (tmp_path / "recording.yml").write_text(gen.render_recording(config))
    (tmp_path / "alerts.yml").write_text(gen.render(config))
    result = promtool("check", "rules", "--lint-fatal", str(tmp_path / "recording.yml"), str(tmp_path / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_selector_may_name_a_label_in_quotes():
    """Prometheus 3's UTF-8 label names ("service.name"), which Prometheus 2 has no syntax for."""
    from bundlegen.checks import SELECTOR

    assert SELECTOR.fullmatch('"service.name"="rq", job=~"rq-.*"')
    assert not SELECTOR.fullmatch('"service.name"')


@pytest.mark.promtool
def test_durations_prometheus_reads_pass(tmp_path):
    """A `for` of 0 (fires at once), a compound duration, milliseconds: accepted, as promtool does."""
    gen = rule_generator()
    config = gen.load_config()
    config["alerts"]["RQExporterDown"]["for"] = "0"
    config["alerts"]["RQRedisEvictingKeys"]["window"] = "1h30m"
    config["alerts"]["RQJobFailuresGrowing"]["window"] = "90s500ms"
    (tmp_path / "recording.yml").write_text(gen.render_recording(config))
    (tmp_path / "alerts.yml").write_text(gen.render(config))
    assert "[1h30m]" in gen.render(config) and "[90s500ms]" in gen.render(config)
    result = promtool("check", "rules", str(tmp_path / "recording.yml"), str(tmp_path / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
