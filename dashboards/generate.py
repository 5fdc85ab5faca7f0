"""Grafana dashboards as code: writes dashboards/rq-*.json.

    python dashboards/generate.py           # rewrite the JSON files
    python dashboards/generate.py --check   # exit 1 when a committed file differs

Plain dicts in Grafana's JSON model (schema 39, Grafana 10/11): timeseries, stat and table
panels, a datasource variable and job/instance/queue variables that every query uses.
They read prometheus/alerts-config.yml, as the rules do: the service levels' windows and period
(RQ / Service levels reads the recorded series of prometheus/rules/rq-recording.yml), the window
of the recorded backlog growth, the cluster label (when set, every query keeps it and every
dashboard has a `cluster` variable) and whether legends name the instance.

A queue is a name in one Redis: every per-queue `by` list of the panels below also keeps
`instance` (`per_instance`, applied to every dashboard), so two Redis instances' "default" queues
(one exporter's /probe targets, or two exporters under one job) are two series, never one sum.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
RULES_GENERATOR = HERE.parent / "prometheus" / "generate_rules.py"
DS = {"type": "prometheus", "uid": "${datasource}"}
TAG = "rq"

# Selectors every query starts from; QS adds the queue variable, WQ matches per-worker series
# (whose `queues` label is the comma-joined queue list) against it.
S = 'job=~"$job", instance=~"$instance"'
QS = S + ', queue=~"$queue"'
WQ = S + ', queues=~"(.*,)?($queue)(,.*)?"'
RI = "$__rate_interval"


def _rules_generator():
    spec = importlib.util.spec_from_file_location("generate_rules", RULES_GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _rules_generator()  # the rules' generator: the recorded series' names, the config's checks


class Settings(NamedTuple):
    """What the dashboards take from alerts-config.yml."""

    cluster: str  # the cluster label, or "" (off)
    slo: R.Slo  # type: ignore[name-defined]
    backlog_window: str  # RQQueueBacklogGrowing's window: that of the recorded backlog growth
    cron_grace: float  # RQCronJobLate's grace_seconds: a cron job is late past it, as the alert says
    instance_legends: bool  # every legend naming a queue names its instance too

    @classmethod
    def of(cls, config: dict) -> Settings:
        R.check_alerts(config)
        alerts = config["alerts"]
        grace = alerts["RQCronJobLate"]["grace_seconds"]
        legends = config.get("instance_in_legends", False)
        if not isinstance(legends, bool):
            raise R.ConfigError("instance_in_legends", f"must be true or false, got {legends!r}")
        return cls(R.cluster_label(config), R.slo_config(config), alerts["RQQueueBacklogGrowing"]["window"], grace,
                   legends)


def rate(metric: str, selector: str = QS, by: str = "queue") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RI}]))"


def recorded(name: str, by: str = "queue", selector: str = QS) -> str:
    """A recorded per-queue series (rules/rq-recording.yml) summed by `by`: what Prometheus already
    computed every evaluation, instead of the rate over every raw series at each refresh."""
    return f"sum by ({by}) ({name}{{{selector}}})"


def recorded_failure_ratio(by: str = "queue") -> str:
    failed, finished = recorded(R.rate_name("failed"), by), recorded(R.rate_name("finished"), by)
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
              h: int = 8, unit: str = "short") -> None:
        self.add("table", title, description, [target(expr, instant=True, table=True)], unit, w=w, h=h,
                 transformations=transformations)


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


def _label_stat(b: Board, title: str, description: str, expr: str, legend: str) -> None:
    """A stat showing a label's value (an _info gauge's), not the 1 it holds."""
    options = {**_default_options("stat"), "textMode": "name", "graphMode": "none", "colorMode": "none"}
    b.add("stat", title, description, [target(expr, legend)], "none", w=3, h=4, options=options)


def _redis_under_rq(b: Board) -> None:
    """The Redis under RQ (rq_redis_*, one INFO a scrape): what loses jobs without RQ noticing."""
    b.row("Redis under RQ")
    b.stat("INFO readable", "Whether the exporter may run INFO (an ACL user needs +info): no, and this row "
           "stays empty while RQ's own metrics are read.", f"min(rq_redis_info_readable{{{S}}})", "none", w=3,
           mappings=YES_NO)
    _label_stat(b, "Eviction policy", "Redis' maxmemory-policy. Anything but noeviction, with a memory limit, "
                "lets Redis delete RQ's jobs, queues and registries when memory runs out "
                "(RQRedisEvictionPolicyUnsafe).",
                f"max by (policy) (rq_redis_maxmemory_policy_info{{{S}}})", "{{policy}}")
    b.stat("Memory of the limit", "Used memory as a share of maxmemory (no data: no limit is set). At 100 % Redis "
           "evicts keys, or with noeviction refuses every enqueue with OOM (RQRedisMemoryNearLimit).",
           f"max(rq_redis_memory_used_bytes{{{S}}} / on (job, instance) (rq_redis_memory_max_bytes{{{S}}} > 0))",
           "percentunit", w=3)
    b.stat("Keys evicted", "Keys Redis evicted over the dashboard's range: above 0, RQ may have lost jobs "
           "(RQRedisEvictingKeys).", f"sum(increase(rq_redis_evicted_keys_total{{{S}}}[$__range]))", "short", w=3)
    b.stat("Last save ok", "Whether Redis' last RDB snapshot (BGSAVE) and last AOF write both succeeded "
           "(RQRedisPersistenceFailing).",
           f"min(rq_redis_rdb_last_bgsave_ok{{{S}}} * on (job, instance) rq_redis_aof_last_write_ok{{{S}}})",
           "none", w=3, mappings=YES_NO)
    b.stat("AOF", "Whether Redis writes an append-only file: off, a restart loses every write since the last "
           "RDB snapshot (RQRedisRestartedWithoutAof).", f"min(rq_redis_aof_enabled{{{S}}})", "none", w=3,
           mappings=ON_OFF)
    _label_stat(b, "Role", "The replication role of the Redis the exporter reads: a replica whose master link is "
                "down reports stale RQ state (RQRedisMasterLinkDown).",
                f"max by (role) (rq_redis_role_info{{{S}}})", "{{role}}")
    _label_stat(b, "Redis version", "The server's version (INFO redis_version): what a runbook or a managed "
                "service's notes are read against.", f"max by (version) (rq_redis_server_info{{{S}}})", "{{version}}")
    b.stat("Uptime", "Time since Redis started: a restart without AOF loses jobs.",
           f"min(rq_redis_uptime_seconds{{{S}}})", "s", w=3)
    b.series("Redis memory", "Memory Redis uses, and its maxmemory limit where one is set.",
             [target(f"max by (instance) (rq_redis_memory_used_bytes{{{S}}})", "used {{instance}}"),
              target(f"max by (instance) (rq_redis_memory_max_bytes{{{S}}} > 0)", "limit {{instance}}")], "bytes")
    b.series("Evictions", "Keys Redis evicts per second to stay under its limit: each may be an RQ job, queue or "
             "registry entry lost.", [target(rate("rq_redis_evicted_keys_total", S, "instance"), "{{instance}}")],
             "ops")
    b.series("Time since the last RDB save", "Seconds since Redis last saved a snapshot (or started): without "
             "AOF, what a restart loses.",
             [target(f"time() - max by (instance) (rq_redis_rdb_last_save_timestamp_seconds{{{S}}})", "{{instance}}")],
             "s", w=8)
    b.series("Writes not yet saved", "Writes since Redis' last RDB snapshot: lost by a restart without AOF.",
             [target(f"max by (instance) (rq_redis_rdb_changes_since_last_save{{{S}}})", "{{instance}}")],
             "short", w=8)
    b.series("Redis uptime", "Seconds since Redis started: each drop is a restart.",
             [target(f"min by (instance) (rq_redis_uptime_seconds{{{S}}})", "{{instance}}")], "s", w=8)


def _rename_value(name: str) -> dict:
    return {"id": "organize", "options": {"renameByName": {"Value": name}}}


def _hide(*columns: str) -> dict:
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


# A queue alert's queue among those picked; an alert without a queue label (Redis', the workers') always.
FIRING = f'ALERTS{{alertstate="firing", alertname=~"RQ.*", {S}, queue=~"$queue|"}}'
# RQ adds a job's run time to its worker's total_working_time when the job ends: a job longer than
# the rate interval shows as 0 while it runs, then as more than 100 % (clamped) when it ends.
WORKING_TIME_NOTE = ("From RQ's total working time, which RQ adds when each job ends: a job running longer "
                     "than the graph's interval counts only once it ends (so 0 meanwhile, then capped at "
                     "100 %); Current job run time per worker shows such jobs as they run.")


def overview(settings: Settings) -> dict:
    b = Board()
    b.row("Now")
    b.stat("Redis readable", "1 when the exporter could read RQ's state from Redis on its last scrape (rq_up); "
           "0 too while Prometheus cannot scrape the exporter (up), when rq_up would only hold its last value.",
           f"min(rq_up{{{S}}} and on (job, instance) up{{{S}}} == 1 or on (job, instance) up{{{S}}})", "none",
           mappings=UP_DOWN)
    b.stat("Queued jobs", "Jobs waiting in the selected queues.",
           f'sum(rq_jobs{{{QS}, status="queued"}})', "short")
    b.stat("Longest wait", "Age of the oldest queued job over the selected queues: the queue latency.",
           f"max(rq_queue_oldest_job_age_seconds{{{QS}}})", "s")
    b.stat("Live workers", "Workers alive in Redis, whatever their queues.",
           f"sum(rq_live_workers{{{S}}})", "short")
    b.stat("Failures", "Jobs of the selected queues that failed, per second (over 5m: recorded, "
           "queue:rq_jobs_failed:rate5m).", f"sum({R.rate_name('failed')}{{{QS}}})", "ops")
    b.stat("RQ alerts firing", "Alerts of the bundled RQ rules firing now.",
           f"count({FIRING}) or vector(0)", "short")
    b.row("Queues")
    b.series("Queued jobs", "Jobs waiting in each queue (the backlog).",
             [target(f'sum by (queue) (rq_jobs{{{QS}, status="queued"}})', "{{queue}}")], "short")
    b.series("Queue latency", "How long the job at the head of each queue has waited: what a new job "
             "can expect to wait.",
             [target(f"max by (queue) (rq_queue_oldest_job_age_seconds{{{QS}}})", "{{queue}}")], "s")
    b.series("Throughput", "Jobs finished successfully per second, by queue (over 5m: recorded).",
             [target(recorded(R.rate_name("finished")), "{{queue}}")], "ops", w=8)
    b.series("Failures", "Jobs failed per second, by queue (over 5m: recorded).",
             [target(recorded(R.rate_name("failed")), "{{queue}}")], "ops", w=8)
    b.series("Failure ratio", "Share of the completed jobs of each queue that failed (over 5m: recorded).",
             [target(recorded_failure_ratio(), "{{queue}}")], "percentunit", w=8)
    b.series("Run time (p95)", "95th percentile of job run time (start to end), by queue.",
             [timing_target(0.95, "rq_job_duration_seconds", "{{queue}}", "le, queue")], "s")
    b.series("Wait time (p95)", "95th percentile of the time jobs waited in the queue before a worker "
             "started them, by queue.",
             [timing_target(0.95, "rq_job_wait_seconds", "{{queue}}", "le, queue")], "s")
    b.table("Top exception classes", "Failed jobs of the selected queues over the dashboard's range, by the "
            "class of the exception they ended with (rq_job_exceptions_total; unknown: no traceback).",
            top_exceptions("exception", 10), [_hide("Time"), _rename_value("failed jobs")], w=24, h=6)
    b.series("Longest-running job", "How long the longest-running started job of each queue has been "
             "running, and per function (rq_queue_longest_running_job_by_func_seconds, while one runs): a line "
             "that only climbs is a hung job (RQJobRunningTooLong names its function).",
             [target(f"max by (queue) (rq_queue_longest_running_job_seconds{{{QS}}})", "{{queue}}"),
              target(f"max by (queue, func) (rq_queue_longest_running_job_by_func_seconds{{{QS}}})",
                     "{{queue}} {{func}}")], "s")
    b.series("Jobs waiting for a rate limit", "RQ 3.0: jobs held back by their RateLimit until a slot "
             "frees, by queue (in no queue or registry: rq_jobs{status=\"rate_limited\"}).",
             [target(f'sum by (queue) (rq_jobs{{{QS}, status="rate_limited"}})', "{{queue}}")], "short")
    b.row("Workers and alerts")
    b.series("Workers by state", "Live workers by state: busy ones run a job, idle ones wait for one.",
             [target(f"sum by (state) (rq_live_workers{{{S}}})", "{{state}}")], "short", w=8, stacked=True)
    b.table("Queues now", "Jobs per queue and status, as RQ would count them.",
            f"sum by (queue, status) (rq_jobs{{{QS}}})",
            [{"id": "groupingToMatrix", "options": {"columnField": "status", "rowField": "queue",
                                                    "valueField": "Value"}}], w=8)
    b.table("RQ alerts firing", "The bundled RQ alert rules that fire now, with their labels.",
            FIRING, [_hide("Time", "Value", "__name__", "alertstate")], w=8)
    _redis_under_rq(b)
    b.row("Exporter")
    b.series("Scrape duration",
             "Seconds the exporter took to read Redis and work out its figures (not writing them out).",
             [target(f"max by (instance) (rq_exporter_scrape_duration_seconds{{{S}}})", "{{instance}}")], "s")
    b.series("Redis readable", "rq_up over time: 0 while the exporter could not read Redis.",
             [target(f"min by (instance) (rq_up{{{S}}})", "{{instance}}")], "none")
    b.series("Scrape errors", "Scrapes per second in which the exporter could not read Redis (rq_up 0).",
             [target(rate("rq_exporter_scrape_errors_total", S, "instance"), "{{instance}}")], "ops", w=8)
    b.series("Skipped Redis entries", "Entries in Redis the exporter skipped per second, by reason: "
             "missing hashes, keys of the wrong type, malformed fields (the log names each once).",
             [target(rate("rq_exporter_skipped_total", S, "reason"), "{{reason}}")], "ops", w=8)
    b.series("Jobs not timed", "Finished or failed jobs counted but left out of the run/wait histograms "
             "per second, by queue: past --timing-max-jobs-per-scrape, kept forever, or without times.",
             [target(rate("rq_exporter_jobs_not_timed_total"), "{{queue}}")], "ops", w=8)
    b.table("Exporter version", "Version and Python of each exporter instance (rq_exporter_build_info).",
            f"max by (instance, version, python_version) (rq_exporter_build_info{{{S}}})",
            [_hide("Time", "Value")], w=24, h=5)
    return dashboard("rq-overview", "RQ / Overview",
                     "RQ queues, latency, throughput, failures and workers (rq_exporter).", b, settings)


def queue(settings: Settings) -> dict:
    b = Board()
    b.row("Jobs")
    b.stat("Jobs by status", "Jobs of the selected queues per status, as RQ would count them.",
           f"sum by (status) (rq_jobs{{{QS}}})", "short", w=16, legend="{{status}}")
    b.stat("Scheduler running", "1 when an RQ scheduler holds the queue's lock (needed for scheduled "
           "jobs and retries with an interval).",
           f"min by (queue) (rq_queue_scheduler_active{{{QS}}})", "none", w=8, legend="{{queue}}",
           mappings=YES_NO)
    b.series("Jobs by status", "Jobs of each queue and status over time.",
             [target(f"sum by (queue, status) (rq_jobs{{{QS}}})", "{{queue}} {{status}}")], "short")
    b.series("Age of the oldest queued job", "How long the next job of each queue has waited.",
             [target(f"max by (queue) (rq_queue_oldest_job_age_seconds{{{QS}}})", "{{queue}}")], "s")
    b.series("Completed jobs", "Jobs finished and failed per second (over 5m: recorded).",
             [target(recorded(R.rate_name("finished")), "{{queue}} finished"),
              target(recorded(R.rate_name("failed")), "{{queue}} failed")], "ops")
    b.series("Failure ratio", "Share of completed jobs that failed (over 5m: recorded).",
             [target(recorded_failure_ratio(), "{{queue}}")], "percentunit")
    b.series("Retried attempts", "Failed job attempts that RQ retried (Retry), per second (over 5m: recorded). "
             "Counted for the workers that listen to the queue alone: 0 for a queue served only by workers of "
             "several queues (README, RQ versions).",
             [target(recorded(R.RETRY_RATE), "{{queue}}")], "ops")
    b.series("Retry ratio", "Share of the job attempts (retried, finished, failed) that failed and were retried "
             "(over 5m: recorded); RQQueueRetryRateHigh watches it over its own window.",
             [target(recorded(R.RETRY_RATIO), "{{queue}}")], "percentunit")
    window = settings.backlog_window
    b.series(f"Backlog growth ({window})", f"How many jobs each queue gained over the last {window}, net: "
             f"what RQQueueBacklogGrowing compares with its threshold (recorded, {R.backlog_name(window)}).",
             [target(recorded(R.backlog_name(window)), "{{queue}}")], "short", w=24)
    b.row("Timing")
    b.series("Run time", "Job run time (start to end) quantiles over the selected queues.",
             [timing_target(q, "rq_job_duration_seconds", f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)]
             + [target(f"sum(rate(rq_job_duration_seconds_sum{{{QS}}}[{RI}])) / "
                       f"sum(rate(rq_job_duration_seconds_count{{{QS}}}[{RI}]))", "mean")], "s")
    b.series("Wait time", "Time from enqueue to start, quantiles over the selected queues.",
             [timing_target(q, "rq_job_wait_seconds", f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)], "s")
    b.row("Failures by exception")
    b.table("Top exceptions", "Failed jobs over the dashboard's range by queue and the class of the exception "
            "their traceback ends with (unknown: none, as for an abandoned job; other: past "
            "--exception-label-limit classes).",
            top_exceptions(), [_hide("Time"), _rename_value("failed jobs")])
    b.series("Exceptions by class", "Failed jobs per second of the selected queues, by exception class.",
             [target(rate("rq_job_exceptions_total", by="exception"), "{{exception}}")], "ops")
    b.row("Workers and trouble")
    b.series("Workers listening", "Live workers listening on each queue, by state.",
             [target(f"sum by (queue, state) (rq_queue_workers{{{QS}}})", "{{queue}} {{state}}")], "short",
             stacked=True)
    b.series("Jobs needing attention",
             "Abandoned: started jobs whose worker died. Overdue: scheduled jobs past due (no scheduler?). "
             "Intermediate: taken by a worker, not yet started.",
             [target(f"sum by (queue) (rq_queue_abandoned_jobs{{{QS}}})", "{{queue}} abandoned"),
              target(f"sum by (queue) (rq_queue_overdue_scheduled_jobs{{{QS}}})", "{{queue}} overdue"),
              target(f"sum by (queue) (rq_queue_intermediate_jobs{{{QS}}})", "{{queue}} intermediate")],
             "short")
    b.series("Longest-running job", "How long the longest-running started job of each queue has been "
             "running (abandoned jobs left out); 0 when none runs. Per function too, while one runs.",
             [target(f"max by (queue) (rq_queue_longest_running_job_seconds{{{QS}}})", "{{queue}}"),
              target(f"max by (queue, func) (rq_queue_longest_running_job_by_func_seconds{{{QS}}})",
                     "{{queue}} {{func}}")], "s")
    b.series("Jobs waiting for a rate limit", "RQ 3.0: jobs of each queue held back by their RateLimit "
             "until a job of the same limit key ends.",
             [target(f'sum by (queue) (rq_jobs{{{QS}, status="rate_limited"}})', "{{queue}}")], "short")
    return dashboard("rq-queue", "RQ / Queue", "One or more RQ queues in detail: pick them with the queue variable.",
                     b, settings)


def workers(settings: Settings) -> dict:
    b = Board()
    b.row("Workers")
    b.stat("Live workers", "Workers alive in Redis.", f"sum(rq_live_workers{{{S}}})", "short", w=6)
    b.stat("Busy workers", "Workers running a job now.", f'sum(rq_live_workers{{{S}, state="busy"}})',
           "short", w=6)
    b.stat("Dead workers", "Workers still listed in RQ's worker set whose hash expired: killed without a "
           "clean exit.", f"max(rq_dead_workers{{{S}}})", "short", w=6)
    b.stat("Utilisation", "Share of the time the listed workers spent running jobs (per-worker metrics). "
           + WORKING_TIME_NOTE,
           f"clamp_max(sum(rate(rq_workers_working_time_total{{{WQ}}}[{RI}])) / count(rq_workers{{{WQ}}}), 1)",
           "percentunit", w=6)
    b.series("Workers by state", "Live workers by state.",
             [target(f"sum by (state) (rq_live_workers{{{S}}})", "{{state}}")], "short", stacked=True)
    b.series("Workers per queue", "Workers (other than suspended ones) listening on each queue.",
             [target(f'sum by (queue) (rq_queue_workers{{{QS}, state!="suspended"}})', "{{queue}}")], "short")
    b.row("Each worker (per-worker metrics)")
    b.table("Workers", "Every live worker listening on the selected queues, with its queues and state.",
            f"rq_workers{{{WQ}}}", [_hide("Time", "Value", "__name__", "job")], w=24)
    b.series("Jobs finished per worker", "Jobs each worker finished successfully, per second.",
             [target(rate("rq_workers_success_total", WQ, "name"), "{{name}}")], "ops", w=8)
    b.series("Failed attempts per worker", "Job attempts that failed, per second (retries included).",
             [target(rate("rq_workers_failed_total", WQ, "name"), "{{name}}")], "ops", w=8)
    b.series("Busy share per worker", "Share of the time each worker spent running jobs. " + WORKING_TIME_NOTE,
             [target(f'clamp_max({rate("rq_workers_working_time_total", WQ, "name")}, 1)', "{{name}}")],
             "percentunit", w=8)
    b.series("Time since heartbeat", "Seconds since each worker's last heartbeat; an idle worker's can "
             "reach ~400 s.",
             [target(f"time() - max by (name) (rq_worker_last_heartbeat_timestamp_seconds{{{WQ}}})", "{{name}}")],
             "s", w=24)
    b.series("Current job run time per worker", "How long each worker's current job has been running; "
             "0 while it runs none.",
             [target(f"max by (name) (rq_worker_current_job_seconds{{{WQ}}})", "{{name}}")], "s", w=24)
    return dashboard("rq-workers", "RQ / Workers", "RQ workers: states, per-queue coverage and each worker.", b,
                     settings)


def schedules(settings: Settings) -> dict:
    b = Board()
    by_job = "name, queue"
    b.row("RQ cron (`rq cron`)")
    b.stat("Live cron schedulers", "`rq cron` processes whose heartbeat is within RQ's 120 s TTL.",
           f"sum(rq_cron_schedulers{{{S}}})", "short", w=6)
    b.stat("Dead cron schedulers", "Cron schedulers still listed whose heartbeat stopped: killed without a "
           "clean stop.", f"sum(rq_cron_dead_schedulers{{{S}}})", "short", w=6)
    b.stat("Cron jobs", "Cron job names known in Redis.", f"sum(rq_cron_jobs{{{S}}})", "short", w=6)
    grace = settings.cron_grace
    b.stat("Late cron jobs", f"Cron jobs whose next enqueue time passed more than {grace} s ago "
           "(RQCronJobLate's grace_seconds: RQ's cron scheduler stores the next time only once it has enqueued, "
           "so a job due between two scrapes looks late for a moment).",
           f"count(time() - rq_cron_job_next_enqueue_timestamp_seconds{{{QS}}} > {grace}) or vector(0)", "short", w=6)
    b.add("table", "Cron jobs", "Each cron job with its queue: seconds since it was last enqueued, until it "
          "is next enqueued (negative: late), and the live schedulers running it (2: it runs twice).",
          [target(f"time() - max by ({by_job}) (rq_cron_job_last_enqueue_timestamp_seconds{{{QS}}})",
                  instant=True, table=True),
           target(f"max by ({by_job}) (rq_cron_job_next_enqueue_timestamp_seconds{{{QS}}}) - time()",
                  instant=True, table=True),
           target(f"max by ({by_job}) (rq_cron_job_schedulers{{{QS}}})", instant=True, table=True)],
          "s", w=24, transformations=[
              {"id": "merge", "options": {}},
              {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
                  "Value #A": "since last enqueue", "Value #B": "until next enqueue", "Value #C": "schedulers"}}}])
    b.panels[-1]["fieldConfig"]["overrides"] = [
        {"matcher": {"id": "byName", "options": "schedulers"}, "properties": [{"id": "unit", "value": "short"}]}]
    b.series("Cron job lateness", "Seconds since each cron job's next enqueue time passed (0 while on time); "
             f"the line is RQCronJobLate's grace ({grace} s).",
             [target(f"clamp_min(time() - max by ({by_job}) (rq_cron_job_next_enqueue_timestamp_seconds{{{QS}}}), 0)",
                     "{{name}} ({{queue}})")], "s", threshold_lines=[(None, "green"), (grace, "red")])
    b.series("Cron schedulers", "Live and dead `rq cron` schedulers over time.",
             [target(f"sum(rq_cron_schedulers{{{S}}})", "live"),
              target(f"sum(rq_cron_dead_schedulers{{{S}}})", "dead")], "short")
    b.row("rq-scheduler (`rqscheduler`)")
    b.stat("rqscheduler", "Whether a live rqscheduler process is known (new ones are found within a few "
           "scrapes).", f"min(rq_scheduler_up{{{S}}})", "none", w=6, mappings=UP_DOWN)
    b.stat("Scheduled jobs", "Jobs rq-scheduler holds for the selected queues.",
           f"sum(rq_scheduler_jobs{{{QS}}})", "short", w=6)
    b.stat("Overdue jobs", "rq-scheduler jobs whose time has come, still waiting to be moved to their queue.",
           f"sum(rq_scheduler_jobs_overdue{{{QS}}})", "short", w=6)
    b.stat("Untracked jobs", "Jobs past the 20,000 first by due time: counted, their queue and function not read.",
           f"sum(rq_scheduler_jobs_untracked{{{S}}})", "short", w=6)
    b.table("Jobs per queue and function", "rq-scheduler's jobs per queue and function: a cron job registered "
            "again at each deploy shows as a function with more jobs than expected.",
            f"sum by (queue, func) (rq_scheduler_jobs{{{QS}}})", [_hide("Time")])
    b.series("Overdue jobs per queue", "rq-scheduler jobs past due, by queue: with no rqscheduler they only grow.",
             [target(f"sum by (queue) (rq_scheduler_jobs_overdue{{{QS}}})", "{{queue}}")], "short")
    return dashboard("rq-schedules", "RQ / Schedules",
                     "RQ's cron scheduler (`rq cron`) and rq-scheduler: cron jobs, scheduled jobs, liveness.", b,
                     settings)


SLO_ALERTS = "|".join(R.SLO_ALERTS.values())
PAGE_COLORS = {"critical": "red", "warning": "orange", "info": "blue"}


def burn(window: str, kind: str = "") -> str:
    """The burn rate over `window`: the SLI's error ratio over the error budget (100 - objective) %."""
    slo = f', slo="{kind}"' if kind else ""
    return (f"{R.errors_name(window)}{{{QS}{slo}}}\n  / on (job, instance, queue, slo)\n"
            f"(1 - {R.OBJECTIVE}{{{QS}{slo}}})")


def service_levels(settings: Settings) -> dict:
    """RQ / Service levels: what an on-call person opens from a burn-rate alert."""
    slo = settings.slo
    b = Board()
    b.row(f"Error budget over {slo.period}")
    b.stat("Error budget left", f"Share of each queue's error budget for the last {slo.period} not spent yet, per "
           "objective (success: jobs that fail; wait: jobs that start later than the bound). Below 0: overspent "
           "(queue:rq_slo_error_budget_remaining:ratio, evaluated every " + slo.period_interval + ").",
           f"{R.BUDGET_LEFT}{{{QS}}}", "percentunit", w=12, h=8, legend="{{queue}} {{slo}}",
           thresholds=[(None, "red"), (0, "orange"), (0.25, "green")])
    b.table("Objectives", "Each queue's objectives, from alerts-config.yml (slo.objectives: the default and "
            "the overrides): the % of completed jobs that must succeed, the % of jobs that must start within "
            "wait_seconds.", f"{R.OBJECTIVE}{{{QS}}}",
            [_hide("Time", "Value", "__name__", "job")])
    b.series("Error budget left over time", f"The budget left over the last {slo.period}, per queue and "
             "objective: a steady descent is the error rate the objective allows; a cliff, an incident.",
             [target(f"{R.BUDGET_LEFT}{{{QS}}}", "{{queue}} {{slo}}")], "percentunit", w=24,
             threshold_lines=[(None, "red"), (0, "green")])
    b.row("Burn rate: how many times faster than the objective allows")
    for rule in slo.burn_rates:
        page = "page" if rule.severity == "critical" else "ticket"
        b.series(f"{rule.factor:g}x over {rule.long} and {rule.short} ({page})",
                 f"The burn rate over the alert's two windows: it fires ({rule.severity}) while both stay above "
                 f"{rule.factor:g}x for {rule.for_}. The short window drops soon after the errors stop.",
                 [target(burn(rule.long), f"{{{{queue}}}} {{{{slo}}}} {rule.long}"),
                  target(burn(rule.short), f"{{{{queue}}}} {{{{slo}}}} {rule.short}")], "suffix:x", w=8,
                 threshold_lines=[(None, "green"), (rule.factor, PAGE_COLORS[rule.severity])])
    b.row("The indicators")
    short = slo.windows()[0]
    b.series("Failed jobs against the objective", f"Share of each queue's completed jobs that failed (over "
             f"{short}), and the share its success objective allows (100 - objective) %.",
             [target(f'{R.errors_name(short)}{{{QS}, slo="success"}}', "{{queue}} failed"),
              target(f'1 - {R.OBJECTIVE}{{{QS}, slo="success"}}', "{{queue}} allowed")], "percentunit")
    b.series("Jobs started late against the objective", f"Share of each queue's jobs that waited longer than "
             f"their wait objective's bound before a worker started them (over {short}), and the share the "
             "objective allows.",
             [target(f'{R.errors_name(short)}{{{QS}, slo="wait"}}', "{{queue}} late"),
              target(f'1 - {R.OBJECTIVE}{{{QS}, slo="wait"}}', "{{queue}} allowed")], "percentunit")
    b.series("Wait time quantiles", "Time from enqueue to start, per queue (recorded: "
             f"{R.quantile_name('rq_job_wait_seconds')}), and the wait objective's bound.",
             [target(f"{R.quantile_name('rq_job_wait_seconds')}{{{QS}}}", "{{queue}} q{{quantile}}"),
              target(f"{R.WAIT_THRESHOLD}{{{QS}}}", "{{queue}} bound")], "s")
    b.series("Run time quantiles", "Job run time (start to end) per queue, both statuses (recorded: "
             f"{R.quantile_name('rq_job_duration_seconds')}).",
             [target(f"{R.quantile_name('rq_job_duration_seconds')}{{{QS}}}", "{{queue}} q{{quantile}}")], "s")
    b.row("Alerts")
    b.table("Burn-rate alerts firing", "RQJobErrorBudgetBurn and RQJobWaitBudgetBurn alerts firing now, with "
            "their windows (long, short) and objective.",
            f'ALERTS{{alertstate="firing", alertname=~"{SLO_ALERTS}", {QS}}}',
            [_hide("Time", "Value", "__name__", "alertstate")], w=24, h=6)
    return dashboard("rq-slo", "RQ / Service levels",
                     "Error budgets and burn rates of each queue's objectives (alerts-config.yml slo): what "
                     "RQJobErrorBudgetBurn and RQJobWaitBudgetBurn link to.", b, settings)


DASHBOARDS = {"rq-overview.json": overview, "rq-queue.json": queue, "rq-workers.json": workers,
              "rq-schedules.json": schedules, "rq-slo.json": service_levels}


def render(build, config: dict | None = None) -> str:
    """One dashboard's JSON, built from an alerts config (prometheus/alerts-config.yml by default)."""
    settings = Settings.of(config if config is not None else R.load_config())
    return json.dumps(build(settings), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed dashboard is stale")
    args = parser.parse_args(argv)
    try:
        config = R.load_config()
        files = {HERE / name: render(build, config) for name, build in DASHBOARDS.items()}
    except R.ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    return R.write_or_check(files, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
