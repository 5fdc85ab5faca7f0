"""Many clusters (alerts-config.yml's cluster_label): every rule keeps the label in its `by` and
`on` lists, every dashboard offers it and every query keeps it, the alerts' dashboard link names
the cluster wherever the label comes from, and the README's and the bundle's examples for
federation and external labels."""

from __future__ import annotations

import re

import pytest
import yaml
from bundle import (
    INSTANCE,
    PROMETHEUS,
    alerts_config,
    check_queries_parse,
    evaluate_queries,
    firing,
    generated_dashboards,
    page,
    panels,
    promtool,
    queries,
    readme_yaml,
    recorded_names,
    rule_generator,
    run_unit_test,
    series,
    substitute,
)

from support import ROOT


def clustered() -> dict:
    return alerts_config(cluster_label="cluster")


def test_off_by_default():
    assert alerts_config()["cluster_label"] == ""
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
    for board in generated_dashboards(alerts_config()).values():
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
    assert "by (region, job, instance, queue)" in gen.render_recording(alerts_config(cluster_label="region"))
    for bad in ("two words", "queue"):
        with pytest.raises(SystemExit, match="cluster_label"):
            gen.render(alerts_config(cluster_label=bad))


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


def test_the_readmes_cluster_examples():
    setting, external = readme_yaml("Many clusters")
    assert setting == {"cluster_label": "cluster"}
    assert "cluster" in external["global"]["external_labels"]
