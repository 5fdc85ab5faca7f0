"""The service levels of alerts-config.yml (issue 23): the config checked with clear errors, per-queue
overrides turned into PromQL that picks each queue's first match, the optional cluster label kept
by every rule and offered by every dashboard, and the example configs for many clusters."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from bundle import (
    PROMETHEUS,
    check_queries_parse,
    evaluate_queries,
    generated_dashboards,
    metric_names,
    panels,
    promtool,
    queries,
    recorded_names,
    rule_generator,
    substitute,
)

from rq_exporter_ng.settings import DEFAULT_BUCKETS
from support import ROOT

INSTANCE = "rq-exporter:9726"
OVERRIDES = [
    {"queue": "emails", "success": {"objective": 99.9}},
    {"queue_regex": "reports-.*", "wait": {"objective": 99, "within_seconds": 300}},
    {"queue": "scratch", "success": False, "wait": False},
]


def config(**changes) -> dict:
    gen = rule_generator()
    changed = copy.deepcopy(gen.load_config())
    for key, value in changes.items():
        changed[key] = value
    return changed


def error(changed: dict) -> str:
    gen = rule_generator()
    with pytest.raises(SystemExit) as raised:
        gen.render_recording(changed)
    return str(raised.value)


# --- the config, checked ---------------------------------------------------------------------------

def test_wait_buckets_are_the_exporters_defaults():
    assert tuple(config()["slo"]["wait_buckets"]) == DEFAULT_BUCKETS
    readme = (ROOT / "README.md").read_text()
    assert "--timing-buckets" in readme and "wait_buckets" in readme


@pytest.mark.parametrize(("path", "value", "message"), [
    (("objectives", "default", "wait", "within_seconds"), 45,
     "slo.objectives.default.wait: within_seconds 45 is not a bucket bound of rq_job_wait_seconds "
     "(slo.wait_buckets: 0.01, 0.05, 0.25, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400): pick one of them"),
    (("objectives", "default", "success", "objective"), 100,
     "slo.objectives.default.success: objective must be a percentage between 0 and 100 (exclusive), got 100"),
    (("objectives", "default", "success", "objective"), 90,
     "slo.objectives.default.success: with an objective of 90 % a burn rate of 14.4 needs more than all jobs "
     "to miss it: that alert could never fire"),
    (("objectives", "default", "wait", "objective"), "95%", "objective must be a percentage"),
    (("period",), "a month", "slo.period: not a Prometheus duration"),
    (("period",), "3d", "slo.period: 3d is no longer than the burn rate window 3d"),
    (("period",), "72h", "slo.period: 72h is no longer than the burn rate window 3d"),  # compared as durations
    (("objectives", "default", "wait", "within_seconds"), float("inf"), "within_seconds inf is not a bucket bound"),
    (("objectives", "default", "wait", "within_seconds"), None, "slo.objectives.default.wait: missing within_seconds"),
    (("burn_rates", 0, "for"), None, "slo.burn_rates[0]: missing keys for"),
    (("burn_rates", 0, "window"), "1h", "slo.burn_rates[0]: unknown keys window"),
    (("burn_rates", 0, "long"), "1x", "slo.burn_rates[0].long: not a Prometheus duration"),
    (("unknown", 1), "x", "slo: unknown keys 1"),
    (("burn_rates", 0, "short"), "2h", "slo.burn_rates[0]: the short window (2h) must be shorter than the long one"),
    (("burn_rates", 1, "severity"), "page", "severity must be critical, warning or info"),
])
def test_a_mistake_in_the_slo_section_is_one_clear_error(path, value, message):
    changed = config()
    node = changed["slo"]
    if path[0] == "unknown":  # a key YAML made a number
        path = path[1:]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    assert message in error(changed)
    assert error(changed).startswith("alerts-config.yml: slo")


@pytest.mark.parametrize(("override", "message"), [
    ({"queue": "a", "queue_regex": "b", "success": {"objective": 99}}, "give either `queue`"),
    ({"success": {"objective": 99}}, "give either `queue`"),
    ({"queue_regex": "(unclosed", "success": {"objective": 99}}, "queue_regex '(unclosed' is no regular expression"),
    ({"queue": "a", "latency": {"objective": 99}}, "unknown keys latency"),
    ({"queue": "a", "wait": {"objective": 99, "within_seconds": 7}}, "within_seconds 7 is not a bucket bound"),
    # Python's re takes them, Prometheus' RE2 does not: promtool would refuse the rules
    ({"queue_regex": "reports-(?!tmp).*", "success": {"objective": 99}}, "RE2) have no '(?!'"),
    ({"queue_regex": "(a)\\1", "success": {"objective": 99}}, "RE2) have no '\\\\1'"),
    ({"queue_regex": "reports\\Z", "success": {"objective": 99}}, "RE2) have no '\\\\Z'"),
])
def test_a_mistake_in_an_override_names_the_override(override, message):
    changed = config()
    changed["slo"]["objectives"]["overrides"] = [OVERRIDES[0], override]
    assert "slo.objectives.overrides[1]" in error(changed) and message in error(changed)


def test_a_bucket_in_either_form_and_a_fractional_one():
    gen = rule_generator()
    assert gen.le_matcher(30.0) == 'le=~"30(\\\\.0)?"'
    assert gen.le_matcher(0.25) == 'le="0.25"'
    changed = config()
    changed["slo"]["objectives"]["default"]["wait"]["within_seconds"] = 2.5
    assert 'le="2.5"' in gen.render_recording(changed)


# --- overrides: each queue's first match -----------------------------------------------------------

def series(name: str, values: str, **labels: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in {"job": "rq", "instance": INSTANCE, **labels}.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def firing(eval_time: str, expected: list[dict]) -> dict:
    """A promql case on ALERTS: exactly these burn-rate alerts fire (labels only)."""
    return {"expr": 'ALERTS{alertstate="firing", alertname=~"RQJob(Error|Wait)BudgetBurn"}', "eval_time": eval_time,
            "exp_samples": [{"labels": "ALERTS{" + ", ".join(f'{k}="{v}"' for k, v in {**e, "alertstate": "firing"}.items())
                             + "}", "value": 1}
                            for e in expected]}


def run_unit_test(tmp_path, changed: dict, tests: list[dict]):
    gen = rule_generator()
    (tmp_path / "recording.yml").write_text(gen.render_recording(changed))
    (tmp_path / "alerts.yml").write_text(gen.render(changed))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["recording.yml", "alerts.yml"], "evaluation_interval": "1m",
        "group_eval_order": [gen.RECORDING_GROUP, gen.PERIOD_GROUP, gen.GROUP, gen.SLO_GROUP], "tests": tests}))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def page(queue: str, slo: str, objective: str, cluster: dict | None = None, **extra: str) -> dict:
    return {"alertname": "RQJobErrorBudgetBurn" if slo == "success" else "RQJobWaitBudgetBurn",
            **(cluster or {}), "job": "rq", "instance": INSTANCE, "queue": queue, "severity": "critical", "long": "1h",
            "short": "5m", "slo": slo, "objective": objective, **extra}


@pytest.mark.promtool
def test_overrides_by_name_and_regex_win_over_the_default_and_false_turns_an_objective_off(tmp_path):
    changed = config()
    changed["slo"]["objectives"]["overrides"] = OVERRIDES
    queues = ("default", "emails", "scratch", "reports", "reports-daily")
    inputs = [series("rq_jobs", "0x30", queue=q, status="queued") for q in queues]
    # 2 % of the jobs fail on default (2x its 99 % budget: no page), on emails (20x its 99.9 % budget:
    # the fast page) and on scratch (no objective at all).
    for q in ("default", "emails", "scratch"):
        inputs += [series("rq_jobs_failed_total", "0+2x30", queue=q), series("rq_jobs_finished_total", "0+98x30", queue=q)]
    # Every job of reports and reports-daily waits between 30 s and 300 s: 20x the budget of the default
    # (95 % within 30 s); nothing against reports-.*'s (99 % within 300 s). "reports" does not match the
    # regex, which must match the whole name.
    for q in ("reports", "reports-daily", "scratch"):
        inputs += [series("rq_job_wait_seconds_bucket", "0x30", queue=q, le="30.0"),
                   series("rq_job_wait_seconds_bucket", "0+100x30", queue=q, le="300.0"),
                   series("rq_job_wait_seconds_count", "0+100x30", queue=q)]
    objectives = [
        ("default", "success", "99", 0.99, {}), ("emails", "success", "99.9", 0.999, {}),
        ("reports", "success", "99", 0.99, {}), ("reports-daily", "success", "99", 0.99, {}),
        ("default", "wait", "95", 0.95, {"wait_seconds": "30"}), ("emails", "wait", "95", 0.95, {"wait_seconds": "30"}),
        ("reports", "wait", "95", 0.95, {"wait_seconds": "30"}),
        ("reports-daily", "wait", "99", 0.99, {"wait_seconds": "300"}),
    ]
    run_unit_test(tmp_path, changed, [{
        "name": "overrides", "interval": "1m", "input_series": inputs,
        "promql_expr_test": [
            {"expr": "queue:rq_slo_objective:ratio", "eval_time": "10m", "exp_samples": [
                {"labels": "queue:rq_slo_objective:ratio{" + ", ".join(
                    f'{k}="{v}"' for k, v in {"job": "rq", "instance": INSTANCE, "queue": q, "slo": slo,
                                               "objective": obj, **extra}.items()) + "}", "value": value}
                for q, slo, obj, value, extra in objectives]},
            firing("10m", [page("emails", "success", "99.9"),
                           page("reports", "wait", "95", wait_seconds="30")]),
        ],
    }])


def test_an_objective_is_recorded_as_written():
    """99.99999 % stays that (`:g` made it "100", a budget of 0), and 99.9 % is 0.999, not 99.9 / 100's
    0.9990000000000001."""
    gen = rule_generator()
    changed = config()
    changed["slo"]["burn_rates"] = [dict(b, burn_rate=1) for b in changed["slo"]["burn_rates"]]
    changed["slo"]["objectives"]["overrides"] = [{"queue": "a", "success": {"objective": 99.99999}},
                                                 {"queue": "b", "success": {"objective": 99.9}}]
    recorded = gen.render_recording(changed)
    assert "objective: '99.99999'" in recorded and "0.9999999 * group by" in recorded
    assert "objective: '99.9'" in recorded and "0.999 * group by" in recorded


# --- many clusters ---------------------------------------------------------------------------------

def clustered() -> dict:
    return config(cluster_label="cluster")


def test_off_by_default():
    assert config()["cluster_label"] == ""
    text = (PROMETHEUS / "rules" / "rq-recording.yml").read_text() + (PROMETHEUS / "rules" / "rq-alerts.yml").read_text()
    assert "cluster" not in text


@pytest.mark.promtool
def test_every_rule_keeps_the_cluster_label_in_its_by_and_on_lists(tmp_path):
    gen = rule_generator()
    texts = gen.render_recording(clustered()), gen.render(clustered())
    groups = [g for text in texts for g in yaml.safe_load(text)["groups"]]
    clauses = 0
    for rule in (r for g in groups for r in g["rules"]):
        for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
            assert clause.split(", ")[0] == "cluster", (rule.get("alert") or rule["record"], clause)
            clauses += 1
        if "annotations" in rule:
            assert "var-cluster={{ or $labels.cluster $externalLabels.cluster }}&var-job=" \
                in rule["annotations"]["dashboard_url"]
    assert clauses > 50
    for name, text in zip(("recording.yml", "alerts.yml"), texts, strict=True):
        (tmp_path / name).write_text(text)
    result = promtool("check", "rules", str(tmp_path / "recording.yml"), str(tmp_path / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
@pytest.mark.parametrize(("external", "labels", "expected"), [
    ({"cluster": "eu"}, {}, "eu"),  # each cluster's Prometheus: the label is external
    ({}, {"cluster": "us"}, "us"),  # a Thanos or Mimir ruler: the series carry it
    ({"cluster": "eu"}, {"cluster": "us"}, "us"),  # the series' own label wins
])
def test_the_dashboard_link_names_the_cluster_wherever_the_label_comes_from(tmp_path, external, labels, expected):
    """Rendered by Prometheus' own templates (promtool): the generated link of RQAllWorkersGone,
    whose other annotations are left out so that the case compares the link alone."""
    gen = rule_generator()
    rendered = yaml.safe_load(gen.render(clustered()))
    (rule,) = [r for g in rendered["groups"] for r in g["rules"] if r.get("alert") == "RQAllWorkersGone"]
    rule["annotations"] = {"dashboard_url": rule["annotations"]["dashboard_url"]}
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump({"groups": [{"name": "one", "rules": [rule]}]}))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "external_labels": external,
        "input_series": [series("rq_live_workers", "0x30", **labels, state="idle"), series("rq_up", "1x30", **labels)],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "RQAllWorkersGone", "exp_alerts": [{
            "exp_labels": {**labels, "job": "rq", "instance": INSTANCE, "severity": "critical"},
            "exp_annotations": {"dashboard_url": f"http://localhost:3000/d/rq-overview?var-cluster={expected}"
                                                 f"&var-job=rq&var-instance={INSTANCE}"}}]}]}]}))
    result = promtool("test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
def test_two_clusters_with_the_same_names_stay_apart(tmp_path):
    """Two clusters whose exporters have the same job, instance and queue names (as two copies of the
    compose stack): eu burns its budget, has a queue without workers and no worker at all; us is
    healthy. Without the cluster label in the rules' `by` and `on`, us's series would hide eu's
    trouble (the sums mix them, us's workers cover eu's queue)."""
    eu, us = {"cluster": "eu"}, {"cluster": "us"}
    inputs = []
    for where, failed, workers in ((eu, "0+20x30", "0x30"), (us, "0x30", "2x30")):
        inputs += [series("rq_jobs", "5x30", **where, queue="default", status="queued"),
                   series("rq_jobs_failed_total", failed, **where, queue="default"),
                   series("rq_jobs_finished_total", "0+80x30", **where, queue="default"),
                   series("rq_queue_workers", workers, **where, queue="default", state="idle"),
                   series("rq_live_workers", workers, **where, state="idle"),
                   series("rq_up", "1x30", **where)]
    run_unit_test(tmp_path, clustered(), [{
        "name": "two clusters", "interval": "1m", "input_series": inputs,
        "promql_expr_test": [
            firing("10m", [page("default", "success", "99", eu)]),
            {"expr": 'ALERTS{alertstate="firing", alertname=~"RQQueueWithoutWorkers|RQAllWorkersGone"}',
             "eval_time": "10m", "exp_samples": [
                 {"labels": f'ALERTS{{alertname="RQQueueWithoutWorkers", alertstate="firing", cluster="eu", job="rq", '
                            f'instance="{INSTANCE}", queue="default", status="queued", severity="critical"}}', "value": 1},
                 {"labels": f'ALERTS{{alertname="RQAllWorkersGone", alertstate="firing", cluster="eu", job="rq", '
                            f'instance="{INSTANCE}", severity="critical"}}', "value": 1}]},
            {"expr": "queue:rq_jobs_failed:ratio_rate5m", "eval_time": "10m", "exp_samples": [
                {"labels": f'queue:rq_jobs_failed:ratio_rate5m{{cluster="eu", job="rq", instance="{INSTANCE}", queue="default"}}',
                 "value": 0.19999999999999998},  # 20 of 100, to the last bit
                {"labels": f'queue:rq_jobs_failed:ratio_rate5m{{cluster="us", job="rq", instance="{INSTANCE}", queue="default"}}',
                 "value": 0}]},
        ],
    }])


@pytest.mark.promtool
def test_every_dashboard_offers_the_cluster_variable_and_every_query_keeps_it(tmp_path):
    boards = generated_dashboards(clustered())
    assert set(boards) == {name for name, _, _ in queries()}
    for name, board in boards.items():
        variables = [v["name"] for v in board["templating"]["list"]]
        assert variables[:3] == ["datasource", "cluster", "job"], name
        cluster = board["templating"]["list"][1]
        assert cluster["query"] == "label_values(rq_up, cluster)" and cluster["includeAll"], name
        for var in board["templating"]["list"][2:]:
            assert 'cluster=~"$cluster"' in var["query"], (name, var["name"])
        for panel in panels(board):
            for t in panel["targets"]:
                for labels in re.findall(r"\{([^}]*)\}", re.sub(r"\{\{[^}]*\}\}", "", t["expr"])):
                    assert 'cluster=~"$cluster", job=~"$job"' in labels or 'job=~"$job"' not in labels, \
                        (name, panel["title"], t["expr"])
                for clause in re.findall(r"\b(?:by|on) \(([^)]*)\)", t["expr"]):
                    assert clause.startswith("cluster"), (name, panel["title"], clause)
                if t.get("legendFormat"):
                    assert t["legendFormat"].startswith("{{cluster}}"), (name, panel["title"])
                    # ... and the series keeps the label the legend names: no aggregation drops it.
                    assert not re.search(r"\b(sum|min|max|avg|count)\(", t["expr"]), (name, panel["title"], t["expr"])
    # Off: no variable, no matcher.
    for board in generated_dashboards(config()).values():
        assert "cluster" not in {v["name"] for v in board["templating"]["list"]}
    exprs = [substitute(expr).replace("$cluster", ".*") for _, _, expr in queries(boards)]
    result = check_queries_parse(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.promtool
def test_the_legended_totals_are_per_cluster(tmp_path):
    """The series whose legend is a word ("live", "dead", "mean") total every queue or scheduler: with
    the cluster label, a total per cluster, named by its legend, not one line for every cluster."""
    titles = {p["title"]: p for board in generated_dashboards(clustered()).values() for p in panels(board)
              if p["type"] == "timeseries"}
    live, dead = (t["expr"].replace("$cluster", ".*") for t in titles["Cron schedulers"]["targets"])
    inputs = [series("rq_cron_schedulers", "1x10", cluster="eu"), series("rq_cron_schedulers", "2x10", cluster="us"),
              series("rq_cron_dead_schedulers", "0x10", cluster="eu"),
              series("rq_cron_dead_schedulers", "1x10", cluster="us")]
    labels = {"eu": {"cluster": "eu"}, "us": {"cluster": "us"}}
    result = evaluate_queries([live, dead], inputs, "5m", [
        [{"labels": labels["eu"], "value": 1}, {"labels": labels["us"], "value": 2}],
        [{"labels": labels["eu"], "value": 0}, {"labels": labels["us"], "value": 1}]], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_label_name_is_configurable_and_checked():
    gen = rule_generator()
    assert "by (region, job, instance, queue)" in gen.render_recording(config(cluster_label="region"))
    for bad in ("two words", "queue"):
        with pytest.raises(SystemExit, match="cluster_label"):
            gen.render(config(cluster_label=bad))


@pytest.mark.promtool
def test_the_federation_example_loads_and_federates_every_recorded_series():
    path = PROMETHEUS / "prometheus-federation.yml"
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    example = yaml.safe_load(path.read_text())
    (job,) = example["scrape_configs"]
    assert job["metrics_path"] == "/federate" and job["honor_labels"] is True
    matchers = job["params"]["match[]"]
    for name in recorded_names() | {"ALERTS"}:
        assert any(re.fullmatch(m.split('"')[1], name) for m in matchers if "__name__=~" in m), name
    # The leaf Prometheus servers name their cluster in external_labels (the README shows it).
    readme = (ROOT / "README.md").read_text()
    assert "external_labels:" in readme and "cluster_label: cluster" in readme


def test_the_compose_prometheus_keeps_the_whole_slo_period():
    """The period's rules read [30d]: under Prometheus' default 15d retention the budget would be
    worked out over the last 15 days only."""
    gen = rule_generator()
    compose = yaml.safe_load((ROOT / "docker-compose-rq-monitor.yml").read_text().replace("${RQ_MONITOR_DIR:-.}", "."))
    (kept,) = [f.split("=", 1)[1] for f in compose["services"]["rq-prometheus"]["command"]
               if f.startswith("--storage.tsdb.retention.time=")]
    assert gen.seconds(kept) >= gen.seconds(config()["slo"]["period"])


# --- make demo ------------------------------------------------------------------------------------

def test_the_demo_with_alert_for_loads_the_recording_rules_too(tmp_path):
    from demo import run

    recording, alerts = run.bundle_rule_files("10s", tmp_path)
    recorded = {r["record"] for g in yaml.safe_load(Path(recording).read_text())["groups"] for r in g["rules"]}
    rules = [r for g in yaml.safe_load(Path(alerts).read_text())["groups"] for r in g["rules"]]
    assert {r["for"] for r in rules} == {"10s"}
    assert {n for r in rules for n in metric_names(r["expr"]) if ":" in n} <= recorded


# --- the README's examples ------------------------------------------------------------------------

def readme_yaml(section: str) -> list[dict]:
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"\n### {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", body, re.S)]


@pytest.mark.promtool
def test_the_readmes_slo_example_generates_valid_rules(tmp_path):
    gen = rule_generator()
    (example,) = readme_yaml("Service levels")
    changed = config(slo=example["slo"])
    slo = gen.slo_config(changed)
    assert [o.percent for o in slo.objectives["success"]] == ["99.9", "99"]  # emails, then the default
    assert [(o.percent, o.within) for o in slo.objectives["wait"]] == [("99", 300.0), ("95", 30.0)]
    assert 'queue!="scratch"' in slo.objectives["success"][-1].matchers
    (tmp_path / "r.yml").write_text(gen.render_recording(changed))
    (tmp_path / "a.yml").write_text(gen.render(changed))
    # --lint-fatal: the two wait thresholds' entries are one rule a window (or'ed), not two promtool
    # calls duplicates
    result = promtool("check", "rules", "--lint-fatal", str(tmp_path / "r.yml"), str(tmp_path / "a.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The bundled config's defaults are the README's.
    bundled = config()["slo"]
    assert {k: v for k, v in example["slo"].items() if k != "objectives"} == \
        {k: v for k, v in bundled.items() if k != "objectives"}
    assert example["slo"]["objectives"]["default"] == bundled["objectives"]["default"]


def test_the_readmes_cluster_examples():
    setting, external = readme_yaml("Many clusters")
    assert setting == {"cluster_label": "cluster"}
    assert "cluster" in external["global"]["external_labels"]
