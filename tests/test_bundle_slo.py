"""The service levels of alerts-config.yml (issue 23): the config checked with clear errors, per-queue
overrides turned into PromQL that picks each queue's first match, the retention the period needs,
and the README's SLO example (many clusters: test_bundle_clusters.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from bundle import (
    INSTANCE,
    alerts_config,
    firing,
    metric_names,
    page,
    promtool,
    readme_yaml,
    rule_generator,
    run_unit_test,
    series,
)

from rq_exporter_ng.settings import DEFAULT_BUCKETS
from support import ROOT

OVERRIDES = [
    {"queue": "emails", "success": {"objective": 99.9}},
    {"queue_regex": "reports-.*", "wait": {"objective": 99, "within_seconds": 300}},
    {"queue": "scratch", "success": False, "wait": False},
]


def error(changed: dict) -> str:
    gen = rule_generator()
    with pytest.raises(SystemExit) as raised:
        gen.render_recording(changed)
    return str(raised.value)


# --- the config, checked ---------------------------------------------------------------------------

def test_wait_buckets_are_the_exporters_defaults():
    assert tuple(alerts_config()["slo"]["wait_buckets"]) == DEFAULT_BUCKETS
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
    changed = alerts_config()
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
    changed = alerts_config()
    changed["slo"]["objectives"]["overrides"] = [OVERRIDES[0], override]
    assert "slo.objectives.overrides[1]" in error(changed) and message in error(changed)


def test_a_bucket_in_either_form_and_a_fractional_one():
    gen = rule_generator()
    assert gen.le_matcher(30.0) == 'le=~"30(\\\\.0)?"'
    assert gen.le_matcher(0.25) == 'le="0.25"'
    changed = alerts_config()
    changed["slo"]["objectives"]["default"]["wait"]["within_seconds"] = 2.5
    assert 'le="2.5"' in gen.render_recording(changed)


# --- overrides: each queue's first match -----------------------------------------------------------

@pytest.mark.promtool
def test_overrides_by_name_and_regex_win_over_the_default_and_false_turns_an_objective_off(tmp_path):
    changed = alerts_config()
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
    changed = alerts_config()
    changed["slo"]["burn_rates"] = [dict(b, burn_rate=1) for b in changed["slo"]["burn_rates"]]
    changed["slo"]["objectives"]["overrides"] = [{"queue": "a", "success": {"objective": 99.99999}},
                                                 {"queue": "b", "success": {"objective": 99.9}}]
    recorded = gen.render_recording(changed)
    assert "objective: '99.99999'" in recorded and "0.9999999 * group by" in recorded
    assert "objective: '99.9'" in recorded and "0.999 * group by" in recorded


def test_the_compose_prometheus_keeps_the_whole_slo_period():
    """The period's rules read [30d]: under Prometheus' default 15d retention the budget would be
    worked out over the last 15 days only."""
    gen = rule_generator()
    compose = yaml.safe_load((ROOT / "docker-compose-rq-monitor.yml").read_text().replace("${RQ_MONITOR_DIR:-.}", "."))
    (kept,) = [f.split("=", 1)[1] for f in compose["services"]["rq-prometheus"]["command"]
               if f.startswith("--storage.tsdb.retention.time=")]
    assert gen.seconds(kept) >= gen.seconds(alerts_config()["slo"]["period"])


# --- make demo ------------------------------------------------------------------------------------

def test_the_demo_with_alert_for_loads_the_recording_rules_too(tmp_path):
    from demo import run

    recording, alerts = run.bundle_rule_files("10s", tmp_path)
    recorded = {r["record"] for g in yaml.safe_load(Path(recording).read_text())["groups"] for r in g["rules"]}
    rules = [r for g in yaml.safe_load(Path(alerts).read_text())["groups"] for r in g["rules"]]
    assert {r["for"] for r in rules} == {"10s"}
    assert {n for r in rules for n in metric_names(r["expr"]) if ":" in n} <= recorded


# --- the README's examples ------------------------------------------------------------------------

@pytest.mark.promtool
def test_the_readmes_slo_example_generates_valid_rules(tmp_path):
    gen = rule_generator()
    (example,) = readme_yaml("Service levels")
    changed = alerts_config(slo=example["slo"])
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
    bundled = alerts_config()["slo"]
    assert {k: v for k, v in example["slo"].items() if k != "objectives"} == \
        {k: v for k, v in bundled.items() if k != "objectives"}
    assert example["slo"]["objectives"]["default"] == bundled["objectives"]["default"]


