"""The Grafana dashboards: generated from code, every query valid and filtered by the variables."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from bundle import (
    DASHBOARDS,
    check_queries_parse,
    dashboard_generator,
    dashboards,
    evaluate_queries,
    generated_dashboards,
    metric_names,
    panels,
    queries,
    recorded_names,
    rule_generator,
    substitute,
)

from rq_exporter_ng.families.catalogue import BY_NAME
from support import ROOT

MODERN = {"timeseries", "stat", "table", "row"}
# Metrics without a queue label: the queue variable cannot apply to them.
NO_QUEUE = {name for name, spec in BY_NAME.items() if not {"queue", "queues"} & set(spec.labels)}


def test_committed_dashboards_are_the_generated_ones():
    gen = dashboard_generator()
    assert sorted(gen.DASHBOARDS) == sorted(dashboards()), "a JSON file without a generator, or the reverse"
    for name, build in gen.DASHBOARDS.items():
        assert (DASHBOARDS / name).read_text() == gen.render(build), f"{name} is stale: run `make bundle`"
    check = subprocess.run([sys.executable, "dashboards/generate.py", "--check"], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_overview_per_queue_and_workers_dashboards_exist():
    titles = {board["uid"]: board["title"] for board in dashboards().values()}
    assert set(titles) == {"rq-overview", "rq-queue", "rq-workers", "rq-schedules", "rq-slo"}
    assert len({b["uid"] for b in dashboards().values()}) == len(dashboards())


def test_variables_datasource_job_instance_queue():
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        for var in ("job", "instance", "queue"):
            assert variables[var]["type"] == "query", (name, var)
            assert variables[var]["datasource"]["uid"] == "${datasource}", (name, var)


def test_every_panel_is_modern_titled_described_with_a_unit_and_the_datasource_variable():
    for name, board in dashboards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel["type"] in MODERN, (name, panel["title"], panel["type"])
        for panel in panels(board):
            where = (name, panel["title"])
            assert panel["title"] and panel["description"], where
            assert panel["fieldConfig"]["defaults"]["unit"], where
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], where
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", where
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, where


def test_every_query_uses_the_job_instance_and_queue_variables():
    for name, title, expr in queries():
        assert 'job=~"$job"' in expr and 'instance=~"$instance"' in expr, (name, title, expr)
        # Raw series (rq_...), recorded ones (level:rq_...:operations) and ALERTS.
        selectors = re.findall(r"((?:[a-z_]+:)?rq_[a-z0-9_]+(?::[a-z0-9_]+)?|ALERTS)\{([^}]*)\}", expr)
        assert selectors, (name, title, expr)
        for metric, labels in selectors:
            assert 'job=~"$job"' in labels and 'instance=~"$instance"' in labels, (name, title, metric)
            # ALERTS: only some alerts carry a queue label, so the queue filter would hide the others.
            if metric != "ALERTS" and metric_names(metric) - NO_QUEUE:
                assert "$queue" in labels, (name, title, metric)


def test_counters_only_inside_rate_with_rate_interval():
    counters = {n for n, s in BY_NAME.items() if s.type in ("counter", "histogram", "summary")}
    for name, title, expr in queries():
        for metric in re.findall(r"\b(rq_[a-z0-9_]+)\{", expr):
            if metric_names(metric) & counters:
                # A count over the dashboard's range (the top-exceptions tables): increase over $__range.
                assert re.search(r"rate\(" + metric + r"\{[^}]*\}\[\$__rate_interval\]\)", expr) \
                    or re.search(r"increase\(" + metric + r"\{[^}]*\}\[\$__range\]\)", expr), (name, title)
        for window in re.findall(r"\[([^\]]+)\]", expr):
            # Over the dashboard's range: the top-exceptions' increase, Utilisation's count of samples.
            assert window == "$__rate_interval" or (window == "$__range" and (
                "increase(" in expr or "count_over_time(" in expr)), (name, title, window)


def test_every_query_reads_metrics_the_exporter_exposes():
    recorded = recorded_names()
    for name, title, expr in queries():
        for metric in metric_names(expr):
            assert metric in BY_NAME or metric in recorded, \
                f"{name} / {title} reads {metric}, neither in the catalogue nor recorded by rq-recording.yml"


@pytest.mark.promtool
def test_every_query_and_variable_query_parses(tmp_path):
    exprs = [substitute(expr) for _, _, expr in queries()]
    for board in dashboards().values():
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                inner = re.fullmatch(r"label_values\((.+), (\w+)\)", var["query"])
                assert inner, var["query"]
                exprs.append(substitute(inner.group(1)))
    result = check_queries_parse(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus():
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/rq.yml").read_text())["providers"][0]
    # ${RQ_MONITOR_DIR:-.}: the directory of this checkout, as compose reads it with the variable unset.
    compose = yaml.safe_load((ROOT / "docker-compose-rq-monitor.yml").read_text().replace("${RQ_MONITOR_DIR:-.}", "."))
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["services"]["rq-grafana"]["volumes"])
    assert mounts["./dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    source = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://rq-prometheus:9090"
    assert "rq-prometheus" in compose["services"]


def test_exemplars_link_to_the_job_and_the_run_time_panels_show_them():
    """Issue 10: Prometheus stores exemplars, Grafana links job_id to a configurable URL, the
    run-time panels ask for exemplars."""
    compose = yaml.safe_load((ROOT / "docker-compose-rq-monitor.yml").read_text().replace("${RQ_MONITOR_DIR:-.}", "."))
    assert "--enable-feature=exemplar-storage" in compose["services"]["rq-prometheus"]["command"]
    # Compose turns $$ into $: Grafana gets the URL with ${__value.raw}, which it fills with the job id.
    assert compose["services"]["rq-grafana"]["environment"]["RQ_JOB_URL"] == \
        "${RQ_JOB_URL:-http://localhost:9181/view/job/$${__value.raw}}"
    source = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert source["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "job_id", "url": "$RQ_JOB_URL", "urlDisplayLabel": "Open the job"}]
    # Raw histograms' quantiles (recorded series carry no exemplars: RQ / Service levels reads those).
    run_time = [(name, t) for name, board in dashboards().items() for p in panels(board) for t in p["targets"]
                if "histogram_quantile(" in t["expr"]]
    assert {name for name, _ in run_time} == {"rq-overview.json", "rq-queue.json"}
    assert all(t.get("exemplar") is True for _, t in run_time), run_time


def test_exception_panels():
    titles = {name: {p["title"]: p for p in panels(board)} for name, board in dashboards().items()}
    top = titles["rq-queue.json"]["Top exceptions"]
    assert top["type"] == "table" and "increase(rq_job_exceptions_total" in top["targets"][0]["expr"]
    assert "$__range" in top["targets"][0]["expr"] and "queue, exception" in top["targets"][0]["expr"]
    assert "rq_job_exceptions_total" in titles["rq-queue.json"]["Exceptions by class"]["targets"][0]["expr"]
    assert "rq_job_exceptions_total" in titles["rq-overview.json"]["Top exception classes"]["targets"][0]["expr"]


@pytest.mark.promtool
def test_the_top_exceptions_count_a_class_whose_series_appears_with_its_first_failures(tmp_path):
    """A class's counter appears already at its first failures' count (the exporter cannot know a
    class before it fails): increase() alone misses that step. The tables' query, run by promtool
    over a 10 minute range: a class new within it counts whole, an old one by its increase, and a
    class unchanged over the range is left out."""
    from bundle import promtool

    (top,) = [p for p in panels(dashboards()["rq-queue.json"]) if p["title"] == "Top exceptions"]
    expr = substitute(top["targets"][0]["expr"], range_="10m")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "top", "expr": expr}]}]}))
    series = 'rq_job_exceptions_total{job="rq", instance="i", queue="q", exception="%s"}'
    tests = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": series % "Old", "values": "3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 5 5 5 5 5 5"},  # +2 in range
            {"series": series % "New", "values": "_ _ _ _ _ _ _ _ _ _ _ _ _ _ 4 4 4 4 4 4 4"},  # appears at 4
            {"series": series % "Quiet", "values": "7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7"},
        ],
        "promql_expr_test": [{"expr": "top", "eval_time": "20m", "exp_samples": [
            {"labels": 'top{instance="i", queue="q", exception="New"}', "value": 4},
            {"labels": 'top{instance="i", queue="q", exception="Old"}', "value": 2},
        ]}],
    }]}
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("grace", ["abc", -1, True, None])
def test_a_bad_cron_grace_is_one_line_naming_it(grace):
    config = rule_generator().load_config()
    config["alerts"]["RQCronJobLate"]["grace_seconds"] = grace
    with pytest.raises(SystemExit) as stopped:
        dashboard_generator().render(dashboard_generator().schedules, config)
    assert str(stopped.value).startswith("alerts-config.yml: alerts.RQCronJobLate.grace_seconds: must be a number")
    assert "\n" not in str(stopped.value)


# --- a queue is a name in one Redis ----------------------------------------------------------------

def legends(boards: dict[str, dict]) -> list[tuple[str, str, str]]:
    return [(name, panel["title"], t["legendFormat"]) for name, board in boards.items()
            for panel in panels(board) for t in panel["targets"] if t.get("legendFormat")]


def test_every_per_queue_aggregation_keeps_the_instance():
    config = rule_generator().load_config()
    variants = {"committed": dashboards(), "legends": generated_dashboards({**config, "instance_in_legends": True}),
                "cluster": generated_dashboards({**config, "cluster_label": "cluster"})}
    for variant, boards in variants.items():
        clauses = [(name, title, clause) for name, title, expr in queries(boards)
                   for clause in re.findall(r"\bby \(([^)]*)\)", expr)]
        per_queue = [c for c in clauses if "queue" in c[2].split(", ")]
        assert len(per_queue) > 30, variant
        for name, title, clause in per_queue:
            assert "instance" in clause.split(", "), (variant, name, title, clause)


def test_legends_name_the_instance_when_asked():
    config = rule_generator().load_config()
    assert config["instance_in_legends"] is False
    off = legends(dashboards())
    assert not [legend for *_, legend in off if "{{instance}} /" in legend]
    on = legends(generated_dashboards({**config, "instance_in_legends": True}))
    naming_queues = [(name, title, legend) for name, title, legend in on if "{{queue}}" in legend]
    assert len(naming_queues) > 20
    for name, title, legend in naming_queues:
        assert legend.startswith("{{instance}} / "), (name, title, legend)
    assert {legend for *_, legend in on if "{{queue}}" not in legend} == {
        legend for *_, legend in off if "{{queue}}" not in legend}
    clustered = legends(generated_dashboards({**config, "instance_in_legends": True, "cluster_label": "region"}))
    assert all(legend.startswith("{{region}} / {{instance}} / ") for *_, legend in clustered if "{{queue}}" in legend)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_instance_in_legends_is_one_line_naming_it(value):
    gen = dashboard_generator()
    with pytest.raises(SystemExit) as stopped:
        gen.render(gen.overview, {**rule_generator().load_config(), "instance_in_legends": value})
    assert str(stopped.value).startswith("alerts-config.yml: instance_in_legends: must be true or false")
    assert "\n" not in str(stopped.value)


@pytest.mark.promtool
def test_two_redis_instances_queues_of_one_name_are_two_series(tmp_path):
    """Two /probe targets (instances a and b), each with a queue named "default" and a cron job named
    "nightly": the committed panels' queries, run by promtool, give a series per instance with that
    instance's value, never one of the two hidden behind the other or their sum."""
    titles = {(p["type"], p["title"]): p for name in ("rq-overview.json", "rq-schedules.json")
              for p in panels(dashboards()[name])}
    exprs = [titles[("timeseries", t)]["targets"][0]["expr"] for t in ("Queued jobs", "Run time (p95)",
                                                                        "Cron job lateness")]
    exprs.append(titles[("table", "Queues now")]["targets"][0]["expr"])

    def series(metric: str, instance: str, values: str, **labels: str) -> dict:
        inner = ", ".join(f'{k}="{v}"' for k, v in {"job": "rq", "instance": instance, **labels}.items())
        return {"series": f"{metric}{{{inner}}}", "values": values}

    run_time = "rq_job_duration_seconds_bucket"
    inputs = [
        series("rq_jobs", "a", "3x20", queue="default", status="queued"),
        series("rq_jobs", "b", "5x20", queue="default", status="queued"),
        # a: every job within 1 s; b: every job between 1 and 10 s
        *(series(run_time, "a", "0+60x20", queue="default", le=le) for le in ("1", "10", "+Inf")),
        series(run_time, "b", "0x20", queue="default", le="1"),
        *(series(run_time, "b", "0+60x20", queue="default", le=le) for le in ("10", "+Inf")),
        # a's next run was due at 0 (late by the 600 s of eval_time); b's is still to come
        series("rq_cron_job_next_enqueue_timestamp_seconds", "a", "0x20", name="nightly", queue="default"),
        series("rq_cron_job_next_enqueue_timestamp_seconds", "b", "1000x20", name="nightly", queue="default"),
    ]
    a, b = {"instance": "a", "queue": "default"}, {"instance": "b", "queue": "default"}
    cron = {"instance": "", "name": "nightly", "queue": "default"}
    expected = [
        [{"labels": a, "value": 3}, {"labels": b, "value": 5}],
        [{"labels": a, "value": 0.95}, {"labels": b, "value": 9.549999999999999}],  # 1 + 0.95 * 9, to the last bit
        [{"labels": {**cron, "instance": "a"}, "value": 600}, {"labels": {**cron, "instance": "b"}, "value": 0}],
        # the table's row label: one row each (groupingToMatrix would keep one of two equal labels)
        [{"labels": {"instance": "a", "queue": "a / default", "status": "queued"}, "value": 3},
         {"labels": {"instance": "b", "queue": "b / default", "status": "queued"}, "value": 5}],
    ]
    result = evaluate_queries(exprs, inputs, "10m", expected, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_queues_table_names_a_row_as_the_legends_name_a_line():
    """The row label joins instance and queue (above); a regex mapping shows it as the legends would:
    the queue alone, or the cluster and queue, unless instance_in_legends asks for the instance too."""
    config = rule_generator().load_config()

    def table(**changes) -> dict:
        (panel,) = [p for p in panels(generated_dashboards({**config, **changes})["rq-overview.json"])
                    if p["title"] == "Queues now"]
        return panel

    def shown(panel: dict, value: str) -> str:
        for mapping in panel["fieldConfig"]["defaults"].get("mappings", []):
            assert mapping["type"] == "regex"
            # Grafana: value.replace(new RegExp(pattern), text); these patterns read the same in Python
            pattern, text = mapping["options"]["pattern"], mapping["options"]["result"]["text"]
            if re.search(pattern, value):
                return re.sub(pattern, text.replace("$", "\\"), value)
        return value

    assert shown(table(), "rq-exporter:9726 / default") == "default"
    assert shown(table(), "3") == "3"
    assert shown(table(instance_in_legends=True), "orders / default") == "orders / default"
    clustered = table(cluster_label="region")
    assert '"region", "instance", "queue")' in clustered["targets"][0]["expr"]
    assert shown(clustered, "eu / rq-exporter:9726 / default") == "eu / default"
    assert shown(table(cluster_label="region", instance_in_legends=True), "eu / orders / default") == \
        "eu / orders / default"


@pytest.mark.promtool
def test_utilisation_counts_a_long_job_while_it_runs(tmp_path):
    """RQ / Workers' Utilisation samples the workers' state: over a 10 minute range (11 scrapes, both
    ends in), a worker busy with one long job the whole time (its working time would not grow until
    the job ends) and a worker busy at 6 of its scrapes make 17 of 22; nobody busy is 0, not "no data"."""
    (panel,) = [p for p in panels(dashboards()["rq-workers.json"]) if p["title"] == "Utilisation"]
    expr = panel["targets"][0]["expr"]
    worker = 'rq_workers{job="rq", instance="i", name="%s", queues="default", state="%s"}'
    inputs = [
        {"series": worker % ("long", "busy"), "values": "1x20"},
        # scraped every minute: busy at the even minutes, idle at the odd ones
        {"series": worker % ("half", "busy"), "values": " ".join("1" if i % 2 == 0 else "_" for i in range(21))},
        {"series": worker % ("half", "idle"), "values": " ".join("_" if i % 2 == 0 else "1" for i in range(21))},
        {"series": worker % ("idle", "idle"), "values": "_x10 1x10"},  # appears at 10m, idle since
    ]
    result = evaluate_queries([substitute(expr, range_="10m")], inputs[:3], "20m", [[{"labels": {}, "value": 17 / 22}]],
                              tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = evaluate_queries([substitute(expr, range_="5m")], inputs[3:], "20m", [[{"labels": {}, "value": 0}]],
                              tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
