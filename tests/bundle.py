"""Helpers of the bundle tests: load the generators, read dashboard queries, run promtool."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from types import SimpleNamespace

import yaml

from devkit import run
from rq_exporter_ng.families.catalogue import BY_NAME
from support import ROOT, require_tool

PROMETHEUS = ROOT / "prometheus"
DASHBOARDS = ROOT / "dashboards"
RULES = PROMETHEUS / "rules" / "rq-alerts.yml"
RECORDING = PROMETHEUS / "rules" / "rq-recording.yml"
RULE_TESTS = PROMETHEUS / "tests"
INSTANCE = "rq-exporter:9726"  # the exporter of the promtool cases' series


def _public(*modules) -> SimpleNamespace:
    return SimpleNamespace(**{k: v for m in modules for k, v in vars(m).items() if not k.startswith("_")})


def rule_generator() -> SimpleNamespace:
    """The rules' generator (prometheus/generate_rules.py runs it): the public names of bundlegen's
    modules behind it, in one namespace. Read names here; patch a name in its own module."""
    from bundlegen import alerts, config, names, recording, rules, slo, thresholds

    return _public(names, config, slo, thresholds, alerts, recording, rules)


def dashboard_generator() -> SimpleNamespace:
    """The dashboards' generator (dashboards/generate.py runs it), as rule_generator()."""
    from bundlegen import dashboards, grafana, slo_dashboard

    return _public(grafana, slo_dashboard, dashboards)


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def generated_dashboards(config: dict) -> dict[str, dict]:
    """The dashboards as the generator builds them from an alerts config (the committed ones are
    built from prometheus/alerts-config.yml)."""
    gen = dashboard_generator()
    return {name: json.loads(gen.render(build, config)) for name, build in gen.DASHBOARDS.items()}


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queries(boards: dict[str, dict] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel query (of the committed dashboards, or
    of `boards`)."""
    return [(name, panel["title"], t["expr"]) for name, board in (boards or dashboards()).items()
            for panel in panels(board) for t in panel["targets"]]


def substitute(expr: str, job: str = "rq", instance: str = ".*", queue: str = ".*",
               rate_interval: str = "1m", range_: str = "5m") -> str:
    """A Grafana query as Grafana would send it, with the variables set."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
            .replace("$job", job).replace("$instance", instance).replace("$queue", queue))


NAME = re.compile(r"\b(rq_[a-z0-9_]+)\b")
# A recorded series' name: level:metric:operations (rules/rq-recording.yml).
RECORDED = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")


def recorded_names() -> set[str]:
    """The names rules/rq-recording.yml records."""
    import yaml

    return {rule["record"] for group in yaml.safe_load(RECORDING.read_text())["groups"] for rule in group["rules"]}


def metric_names(expr: str) -> set[str]:
    """Catalogue names the query reads (a histogram's _bucket/_sum/_count map to the histogram), and
    the recorded series it reads, by their whole name."""
    names = set(RECORDED.findall(expr))
    for name in NAME.findall(RECORDED.sub("", expr)):
        for suffix in ("", "_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix) if suffix else name
            if base in BY_NAME and (not suffix or BY_NAME[base].type in ("histogram", "summary")):
                names.add(base)
                break
        else:
            names.add(name)  # unknown: the caller reports it
    return names


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return run([require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, idle=60)


def check_queries_parse(exprs: list[str], tmp: Path) -> subprocess.CompletedProcess:
    """promtool's PromQL parser on each query, as recording rules of a throwaway rule file."""
    import yaml

    rules = [{"record": f"query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    return promtool("check", "rules", str(path))


def evaluate_queries(exprs: list[str], input_series: list[dict], eval_time: str,
                     expected: list[list[dict]], tmp: Path) -> subprocess.CompletedProcess:
    """promtool's evaluation of each query (Grafana's variables substituted) at `eval_time` over
    `input_series`, checked against the `expected` samples of each; a sample's labels are given as a
    dict (promtool wants the series' name in front: here the query's recording rule's, q0, q1, ...)."""
    import yaml

    rules = tmp / "queries.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": [
        {"record": f"q{i}", "expr": substitute(e)} for i, e in enumerate(exprs)]}]}))
    cases = [{"expr": f"q{i}", "eval_time": eval_time, "exp_samples": [
        {"labels": f"q{i}{{" + ", ".join(f'{k}="{v}"' for k, v in sample["labels"].items()) + "}",
         "value": sample["value"]} for sample in samples]} for i, samples in enumerate(expected)]
    tests = tmp / "queries.test.yml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": input_series, "promql_expr_test": cases}]}))
    return promtool("test", "rules", str(tests))


def prometheus_api(port: int, path: str, **params: str) -> dict:
    """The data of a real Prometheus's answer to /api/v1/<path> (asserting it succeeded)."""
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def has_data(port: int, expr: str, since: float) -> bool:
    """Some series with a finite value since ``since`` (a range query, as a Grafana panel runs it
    over the dashboard's time range)."""
    data = prometheus_api(port, "query_range", query=expr, start=str(since), end=str(time.time()), step="1")
    return any(math.isfinite(float(v)) for series in data["result"] for _, v in series["values"])


def without_data(has: Callable[[str], bool], exprs: Mapping[Hashable, str], timeout: float = 45) -> list:
    """The keys of ``exprs`` whose query still has no data after ``timeout`` seconds (sorted)."""
    pending = dict(exprs)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {key: expr for key, expr in pending.items() if not has(expr)}
        if pending:
            time.sleep(1)
    return sorted(pending)


# --- alerts-config.yml variants as promtool unit tests (the SLO and cluster tests) ----------------

def alerts_config(**changes) -> dict:
    """prometheus/alerts-config.yml as loaded, with these top-level keys replaced."""
    gen = rule_generator()
    changed = copy.deepcopy(gen.load_config())
    for key, value in changes.items():
        changed[key] = value
    return changed


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


def readme_yaml(section: str) -> list[dict]:
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"\n### {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", body, re.S)]
