"""Sharded exporters under the bundle unchanged: a real Prometheus scraping 3 shards and another
scraping one unsharded exporter, on the same RQ data (tests/shard_scenario.py), with the bundled
rules; every alert and recording rule expression and every dashboard panel query gives the same
result on both, the instance label aside, and the same alerts fire."""

from __future__ import annotations

import math
import time

import pytest
import yaml
from bundle import metric_names, prometheus_api, queries, substitute
from e2e_stack import short_rules, start_prometheus
from shard_scenario import scenario

from devkit import stop_process
from rq_exporter_ng.families.catalogue import BY_NAME, EXPORTER

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]



def own(expr: str) -> bool:
    """Whether the query reads only the exporter's own state (scope "exporter": every shard has a
    series), as the scrape duration or version panels: one row per exporter by design, 3 against 1."""
    names = metric_names(expr)
    return bool(names) and all(name in BY_NAME and BY_NAME[name].scope == EXPORTER for name in names)


def expressions(rules) -> dict[str, str]:
    found = {}
    for name, title, expr in queries():
        found[f"{name} / {title}: {expr}"] = substitute(expr, rate_interval="20s", range_="1m")
    for path in rules.files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[rule.get("alert") or rule["record"]] = rule["expr"]
    return found


def result(port: int, expr: str, at: float) -> list[tuple[frozenset, float]]:
    data = prometheus_api(port, "query", query=expr, time=str(at))
    if data["resultType"] == "scalar":
        return [(frozenset(), float(data["result"][1]))]
    return sorted(((frozenset((k, _without_instance(v, r["metric"])) for k, v in r["metric"].items() if k != "instance"),
                    float(r["value"][1])) for r in data["result"]), key=lambda row: sorted(row[0]))


def _without_instance(value: str, metric: dict) -> str:
    # RQ / Overview's Queues now joins the instance into its row label ("instance / queue").
    return value.removeprefix(f"{metric.get('instance')} / ")


def same(a: list[tuple[frozenset, float]], b: list[tuple[frozenset, float]]) -> bool:
    if [labels for labels, _ in a] != [labels for labels, _ in b]:
        return False
    return all(math.isclose(x, y, rel_tol=0.05, abs_tol=1.5) or (math.isnan(x) and math.isnan(y))
               for (_, x), (_, y) in zip(a, b))


def counted_since(port: int, since: float) -> float:
    """When this Prometheus first had every ended job in its job timing counts: the first instant
    its sum of the run-time histograms' counts reached the value it holds now."""
    expr = "sum(rq_job_duration_seconds_count)"
    data = prometheus_api(port, "query_range", query=expr, start=str(since - 60), end=str(time.time()), step="0.5")
    values = [(float(t), float(v)) for series in data["result"] for t, v in series["values"]]
    assert values, f"no {expr} since {since - 60}"
    final = values[-1][1]
    return next(t for t, v in values if v == final)


def compared_at(shards: int, whole: int, ended: float) -> float:
    """The instant both sides are compared at: a few seconds after the later of the two had counted
    every ended job. Each exporter counts a job at the first scrape after it ended, and under load
    the two Prometheus' scrapes of it fall seconds apart: at a fixed instant near a 20 s window's
    edge, one side's increase is inside the window and the other's outside (seen with the load
    average at 6.6), which says nothing about sharding."""
    first, last = sorted((counted_since(shards, ended), counted_since(whole, ended)))
    assert last - first < 10, f"the two sides counted the ended jobs {last - first:.1f} s apart"
    return min(last + 3, time.time() - 2)


def firing(port: int) -> set[tuple[str, frozenset]]:
    return {(a["labels"]["alertname"], frozenset((k, v) for k, v in a["labels"].items() if k != "instance"))
            for a in prometheus_api(port, "alerts")["alerts"] if a["state"] == "firing"}


def test_the_alerts_and_dashboards_read_three_shards_as_one_exporter(redis_db, tmp_path):
    rules = short_rules(tmp_path)
    proms = {}

    def start(found) -> None:
        proms["shards"] = start_prometheus(tmp_path / "a", [f"127.0.0.1:{e.port}" for e in found.shards], rules)
        proms["whole"] = start_prometheus(tmp_path / "b", [f"127.0.0.1:{found.whole.port}"], rules)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        with scenario(redis_db.url, redis_db.client(), tmp_path, started=start, frozen_while_jobs_end=True):
            ended = time.time()
            time.sleep(30)  # past the short rules' 20 s windows and 2 s `for`
            at = compared_at(proms["shards"][0], proms["whole"][0], ended)
            exprs = expressions(rules)
            differ, compared, with_data = {}, 0, 0
            for key, expr in exprs.items():
                if own(expr):
                    continue
                shards, whole = result(proms["shards"][0], expr, at), result(proms["whole"][0], expr, at)
                if not same(shards, whole):
                    differ[key] = (expr, shards, whole)
                compared += 1
                with_data += bool(whole)
            # The two Prometheus scrape at their own instants: a moving value (the time since a
            # worker's heartbeat, refreshed between the two scrapes) can differ at one instant
            # and agree at the next. A real difference persists over the 5 s after it.
            for key in list(differ):
                for step in range(1, 6):
                    later = at + step
                    while time.time() - 2 < later:
                        time.sleep(0.5)
                    expr = differ[key][0]
                    if same(result(proms["shards"][0], expr, later), result(proms["whole"][0], expr, later)):
                        del differ[key]
                        break
            alerts_shards, alerts_whole = firing(proms["shards"][0]), firing(proms["whole"][0])
    finally:
        for _, process in proms.values():
            stop_process(process, 20)
    print(f"compared {compared} of {len(exprs)} queries, {with_data} with data")
    for key, (expr, shards, whole) in differ.items():
        print("DIFFER", key, "\n ", expr, "\n  shards:", shards[:6], "\n  whole: ", whole[:6])
    assert not differ, sorted(differ)
    assert alerts_shards == alerts_whole
    # What was compared: every rule and panel but the exporter's own, most of them with data, and
    # an alert of a queue (gamma: jobs and no worker) fired by both.
    assert compared >= len(exprs) - 10 and with_data >= compared // 2, (compared, with_data, len(exprs))
    assert ("RQQueueWithoutWorkers", "gamma") in {(name, dict(labels).get("queue")) for name, labels in alerts_whole}
