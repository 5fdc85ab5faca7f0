"""Grafana's JSON model (schema 39, Grafana 10/11) as plain dicts: the selectors, query helpers,
panels laid out on the grid, variables, and the passes every dashboard gets (per instance, per cluster)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from bundlegen.checks import check_config
from bundlegen.config import cluster_label
from bundlegen.names import rate_name
from bundlegen.slo import Slo, slo_config

DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "rq"

# Selectors every query starts from; QS adds the queue variable, WQ matches per-worker series
# (whose `queues` label is the comma-joined queue list) against it.
S = 'job=~"$job", instance=~"$instance"'
QS = S + ', queue=~"$queue"'
WQ = S + ', queues=~"(.*,)?($queue)(,.*)?"'
RI = "$__rate_interval"


class Settings(NamedTuple):
    """What the dashboards take from alerts-config.yml."""

    cluster: str  # the cluster label, or "" (off)
    slo: Slo
    backlog_window: str  # RQQueueBacklogGrowing's window: that of the recorded backlog growth
    cron_grace: float  # RQCronJobLate's grace_seconds: a cron job is late past it, as the alert says
    instance_legends: bool  # every legend naming a queue names its instance too

    @classmethod
    def of(cls, config: dict) -> Settings:
        check_config(config)
        alerts = config["alerts"]
        grace = alerts["RQCronJobLate"]["grace_seconds"]
        legends = config.get("instance_in_legends", False)
        return cls(cluster_label(config), slo_config(config), alerts["RQQueueBacklogGrowing"]["window"], grace,
                   legends)


def rate(metric: str, selector: str = QS, by: str = "queue") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RI}]))"


def recorded(name: str, by: str = "queue", selector: str = QS) -> str:
    """A recorded per-queue series (rules/rq-recording.yml) summed by `by`: what Prometheus already
    computed every evaluation, instead of the rate over every raw series at each refresh."""
    return f"sum by ({by}) ({name}{{{selector}}})"


def recorded_failure_ratio(by: str = "queue") -> str:
    failed, finished = recorded(rate_name("failed"), by), recorded(rate_name("finished"), by)
    # A queue whose every job fails has no finished series: count it as 0, not as "no data".
    return f"{failed} / ({failed} + ({finished} or 0 * {failed}))"


def quantile(q: float, metric: str, by: str = "le") -> str:
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{{{QS}}}[{RI}])))"


def target(expr: str, legend: str = "", instant: bool = False, table: bool = False, exemplar: bool = False) -> dict:
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "range": not instant, "instant": instant}
    if table:
        t["format"] = "table"
    if exemplar:
        # The histogram buckets' job_id exemplars as points; the datasource links them to the job.
        t["exemplar"] = True
    return t


def timing_target(q: float, metric: str, legend: str, by: str = "le") -> dict:
    return target(quantile(q, metric, by), legend, exemplar=True)


def top_exceptions(by: str = "queue, exception", k: int = 20) -> str:
    # A class's series appears with its first failures already counted (the exporter cannot know
    # classes before they fail): increase() misses that first step, so a series that did not exist
    # at the range's start counts whole (`unless ... offset`).
    series = f"rq_job_exceptions_total{{{QS}}}"
    new = f"({series} unless {series} offset $__range)"
    return f"topk({k}, sum by ({by}) ({new} or increase({series}[$__range]))) > 0"


class Board:
    """Panels laid out left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = self.y = self.row_height = 0

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_height = max(self.row_height, h)
        return pos

    def row(self, title: str) -> None:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "id": len(self.panels) + 1, "gridPos": self._place(24, 1)})
        self.x, self.y, self.row_height = 0, self.y + 1, 0

    def add(self, kind: str, title: str, description: str, targets: list[dict], unit: str,
            w: int = 12, h: int = 8, options: dict | None = None, custom: dict | None = None,
            mappings: list | None = None, transformations: list | None = None,
            thresholds: list[tuple[float | None, str]] | None = None) -> None:
        for i, t in enumerate(targets):
            t["refId"] = chr(ord("A") + i)
        defaults: dict = {"unit": unit}
        if custom:
            defaults["custom"] = custom
        if mappings:
            defaults["mappings"] = mappings
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute",
                                      "steps": [{"value": value, "color": color} for value, color in thresholds]}
        panel = {
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "id": len(self.panels) + 1,
            "gridPos": self._place(w, h),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or _default_options(kind),
            "targets": targets,
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)

    def stat(self, title: str, description: str, expr: str, unit: str, w: int = 4, legend: str = "",
             mappings: list | None = None, thresholds: list[tuple[float | None, str]] | None = None,
             h: int = 4) -> None:
        self.add("stat", title, description, [target(expr, legend)], unit, w=w, h=h, mappings=mappings,
                 thresholds=thresholds)

    def series(self, title: str, description: str, targets: list[dict], unit: str, w: int = 12,
               stacked: bool = False, threshold_lines: list[tuple[float | None, str]] | None = None) -> None:
        custom: dict | None = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30} if stacked else None
        if threshold_lines:
            custom = {**(custom or {}), "thresholdsStyle": {"mode": "line"}}
        self.add("timeseries", title, description, targets, unit, w=w, custom=custom, thresholds=threshold_lines)

    def table(self, title: str, description: str, expr: str, transformations: list, w: int = 12,
              h: int = 8, unit: str = "short", mappings: list | None = None) -> None:
        self.add("table", title, description, [target(expr, instant=True, table=True)], unit, w=w, h=h,
                 transformations=transformations, mappings=mappings)


def _default_options(kind: str) -> dict:
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                "orientation": "auto"}
    return {"showHeader": True, "cellHeight": "sm"}


UP_DOWN = [{"type": "value", "options": {"0": {"text": "down", "color": "red", "index": 0},
                                          "1": {"text": "up", "color": "green", "index": 1}}}]
YES_NO = [{"type": "value", "options": {"0": {"text": "no", "color": "orange", "index": 0},
                                         "1": {"text": "yes", "color": "green", "index": 1}}}]


ON_OFF = [{"type": "value", "options": {"0": {"text": "off", "color": "orange", "index": 0},
                                         "1": {"text": "on", "color": "green", "index": 1}}}]


def label_stat(b: Board, title: str, description: str, expr: str, legend: str) -> None:
    """A stat showing a label's value (an _info gauge's), not the 1 it holds."""
    options = {**_default_options("stat"), "textMode": "name", "graphMode": "none", "colorMode": "none"}
    b.add("stat", title, description, [target(expr, legend)], "none", w=3, h=4, options=options)


def rename_value(name: str) -> dict:
    return {"id": "organize", "options": {"renameByName": {"Value": name}}}


def hide(*columns: str) -> dict:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(columns, True)}}


def variables(cluster: str = "") -> list[dict]:
    def query(name: str, label: str, q: str) -> dict:
        return {
            "type": "query", "name": name, "label": label, "datasource": DS,
            # The plain-string form: every Grafana since 7 reads it (and migrates it to its editor).
            "query": q, "definition": q,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
            "current": {}, "options": [], "hide": 0, "regex": "",
        }

    # With a cluster label, a `cluster` variable (as kubernetes-mixin's and celery-mixin's) narrows
    # the others.
    c = f'{cluster}=~"$cluster", ' if cluster else ""
    return [
        {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
         "current": {}, "options": [], "hide": 0, "refresh": 1, "regex": "", "includeAll": False, "multi": False},
        *([query("cluster", "Cluster", f"label_values(rq_up, {cluster})")] if cluster else []),
        query("job", "Job", f"label_values(rq_up{{{c[:-2]}}}, job)" if c else "label_values(rq_up, job)"),
        query("instance", "Instance", f'label_values(rq_up{{{c}job=~"$job"}}, instance)'),
        query("queue", "Queue", f'label_values(rq_jobs{{{c}job=~"$job", instance=~"$instance"}}, queue)'),
    ]


def targets(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield from targets(panel.get("panels", []))
        yield from panel.get("targets", [])


def _by_instance(m: re.Match) -> str:
    labels = m[1].split(", ")
    return f"by (instance, {m[1]})" if "queue" in labels and "instance" not in labels else m[0]


def per_instance(panels: list[dict], legends: bool) -> None:
    """Every per-queue `by` list of the panels keeps `instance` too; with `legends`, every legend
    naming a queue starts with its instance."""
    for t in targets(panels):
        t["expr"] = re.sub(r"\bby \(([^)]*)\)", _by_instance, t["expr"])
        if legends and "{{queue}}" in t.get("legendFormat", ""):
            t["legendFormat"] = f"{{{{instance}}}} / {t['legendFormat']}"


# An aggregation without a `by` list: it keeps no label, so a cluster's series needs one.
BARE_AGGREGATION = re.compile(r"\b(sum|min|max|avg|count)\((?=\S)")


def multi_cluster(panels: list[dict], label: str) -> None:
    """Every query of the panels narrowed to the `cluster` variable and keeping the cluster label in
    its `by` and `on` lists (so series of two clusters never add up), every legend naming it (and so
    every aggregation of a target with a legend keeping it: "live" and "dead" become per cluster)."""
    for t in targets(panels):
        expr = t["expr"].replace('job=~"$job"', f'{label}=~"$cluster", job=~"$job"')
        expr = re.sub(r"\b(by|on) \(", rf"\1 ({label}, ", expr)
        if t.get("legendFormat"):
            expr = BARE_AGGREGATION.sub(rf"\1 by ({label}) (", expr)
            t["legendFormat"] = f"{{{{{label}}}}} / {t['legendFormat']}"
        t["expr"] = expr


def dashboard(uid: str, title: str, description: str, board: Board, settings: Settings | None = None) -> dict:
    cluster = settings.cluster if settings else ""
    per_instance(board.panels, settings.instance_legends if settings else False)
    if cluster:
        multi_cluster(board.panels, cluster)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": [TAG], "asDropdown": False, "includeVars": True,
                   "keepTime": True, "title": "RQ dashboards"}],
        "templating": {"list": variables(cluster)},
        "panels": board.panels,
    }


