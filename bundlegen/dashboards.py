"""The five Grafana dashboards as code: dashboards/rq-*.json.

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
import json
import sys

from bundlegen.config import ConfigError, load_config
from bundlegen.grafana import (
    ON_OFF,
    QS,
    RI,
    UP_DOWN,
    WQ,
    YES_NO,
    Board,
    S,
    Settings,
    dashboard,
    hide,
    label_stat,
    rate,
    recorded,
    recorded_failure_ratio,
    rename_value,
    target,
    timing_target,
    top_exceptions,
)
from bundlegen.names import (
    RETRY_RATE,
    RETRY_RATIO,
    backlog_name,
    rate_name,
)
from bundlegen.rules import ROOT, write_or_check
from bundlegen.slo_dashboard import service_levels


def _redis_under_rq(b: Board) -> None:
    """The Redis under RQ (rq_redis_*, one INFO a scrape): what loses jobs without RQ noticing."""
    b.row("Redis under RQ")
    b.stat("INFO readable", "Whether the exporter may run INFO (an ACL user needs +info): no, and this row "
           "stays empty while RQ's own metrics are read.", f"min(rq_redis_info_readable{{{S}}})", "none", w=3,
           mappings=YES_NO)
    label_stat(b, "Eviction policy", "Redis' maxmemory-policy. Anything but noeviction, with a memory limit, "
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
    label_stat(b, "Role", "The replication role of the Redis the exporter reads: a replica whose master link is "
                "down reports stale RQ state (RQRedisMasterLinkDown).",
                f"max by (role) (rq_redis_role_info{{{S}}})", "{{role}}")
    label_stat(b, "Redis version", "The server's version (INFO redis_version): what a runbook or a managed "
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


# A queue alert's queue among those picked; an alert without a queue label (Redis', the workers') always.
FIRING = f'ALERTS{{alertstate="firing", alertname=~"RQ.*", {S}, queue=~"$queue|"}}'
# RQ adds a job's run time to its worker's total_working_time when the job ends: a job longer than
# the rate interval shows as 0 while it runs, then as more than 100 % (clamped) when it ends.
WORKING_TIME_NOTE = ("From RQ's total working time, which RQ adds when each job ends: a job running longer "
                     "than the graph's interval counts only once it ends (so 0 meanwhile, then capped at "
                     "100 %); Current job run time per worker shows such jobs as they run.")


def longest_running() -> list[dict]:
    """The longest-running job of each queue, and per function (RQ / Overview and RQ / Queue)."""
    return [target(f"max by (queue) (rq_queue_longest_running_job_seconds{{{QS}}})", "{{queue}}"),
            target(f"max by (queue, func) (rq_queue_longest_running_job_by_func_seconds{{{QS}}})",
                   "{{queue}} {{func}}")]


def rate_limited() -> dict:
    return target(f'sum by (queue) (rq_jobs{{{QS}, status="rate_limited"}})', "{{queue}}")


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
           "queue:rq_jobs_failed:rate5m).", f"sum({rate_name('failed')}{{{QS}}})", "ops")
    b.stat("RQ alerts firing", "Alerts of the bundled RQ rules firing now.",
           f"count({FIRING}) or vector(0)", "short")
    b.row("Queues")
    b.series("Queued jobs", "Jobs waiting in each queue (the backlog).",
             [target(f'sum by (queue) (rq_jobs{{{QS}, status="queued"}})', "{{queue}}")], "short")
    b.series("Queue latency", "How long the job at the head of each queue has waited: what a new job "
             "can expect to wait.",
             [target(f"max by (queue) (rq_queue_oldest_job_age_seconds{{{QS}}})", "{{queue}}")], "s")
    b.series("Throughput", "Jobs finished successfully per second, by queue (over 5m: recorded).",
             [target(recorded(rate_name("finished")), "{{queue}}")], "ops", w=8)
    b.series("Failures", "Jobs failed per second, by queue (over 5m: recorded).",
             [target(recorded(rate_name("failed")), "{{queue}}")], "ops", w=8)
    b.series("Failure ratio", "Share of the completed jobs of each queue that failed (over 5m: recorded).",
             [target(recorded_failure_ratio(), "{{queue}}")], "percentunit", w=8)
    b.series("Run time (p95)", "95th percentile of job run time (start to end), by queue.",
             [timing_target(0.95, "rq_job_duration_seconds", "{{queue}}", "le, queue")], "s")
    b.series("Wait time (p95)", "95th percentile of the time jobs waited in the queue before a worker "
             "started them, by queue.",
             [timing_target(0.95, "rq_job_wait_seconds", "{{queue}}", "le, queue")], "s")
    b.table("Top exception classes", "Failed jobs of the selected queues over the dashboard's range, by the "
            "class of the exception they ended with (rq_job_exceptions_total; unknown: no traceback).",
            top_exceptions("exception", 10), [hide("Time"), rename_value("failed jobs")], w=24, h=6)
    b.series("Longest-running job", "How long the longest-running started job of each queue has been "
             "running, and per function (rq_queue_longest_running_job_by_func_seconds, while one runs): a line "
             "that only climbs is a hung job (RQJobRunningTooLong names its function).",
             longest_running(), "s")
    b.series("Jobs waiting for a rate limit", "RQ 3.0: jobs held back by their RateLimit until a slot "
             "frees, by queue (in no queue or registry: rq_jobs{status=\"rate_limited\"}).",
             [rate_limited()], "short")
    b.row("Workers and alerts")
    b.series("Workers by state", "Live workers by state: busy ones run a job, idle ones wait for one.",
             [target(f"sum by (state) (rq_live_workers{{{S}}})", "{{state}}")], "short", w=8, stacked=True)
    queues_now(b, settings)
    b.table("RQ alerts firing", "The bundled RQ alert rules that fire now, with their labels.",
            FIRING, [hide("Time", "Value", "__name__", "alertstate")], w=8)
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
            [hide("Time", "Value")], w=24, h=5)
    return dashboard("rq-overview", "RQ / Overview",
                     "RQ queues, latency, throughput, failures and workers (rq_exporter).", b, settings)


def queues_now(b: Board, settings: Settings) -> None:
    """A row a queue and a column a status. groupingToMatrix keys a row by one label, and a cell it
    meets twice keeps the last value: the row label (`queue`) is joined with the instance (and the
    cluster) so that two Redis instances' "default" queues are two rows. Without instance_in_legends
    a mapping shows only the cluster and queue, as the legends do."""
    labels = [settings.cluster] if settings.cluster else []
    joined = ", ".join(f'"{label}"' for label in [*labels, "instance", "queue"])
    mappings = None
    if not settings.instance_legends:
        # "instance / queue" -> "queue"; "cluster / instance / queue" -> "cluster / queue"
        pattern, text = (r"^(.*?) / .*? / (.*)$", "$1 / $2") if labels else (r"^.*? / (.*)$", "$1")
        mappings = [{"type": "regex", "options": {"pattern": pattern, "result": {"text": text, "index": 0}}}]
    b.table("Queues now", "Jobs per queue and status, as RQ would count them.",
            f'label_join(sum by (instance, queue, status) (rq_jobs{{{QS}}}), "queue", " / ", {joined})',
            [{"id": "groupingToMatrix", "options": {"columnField": "status", "rowField": "queue",
                                                    "valueField": "Value"}}], w=8, mappings=mappings)


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
             [target(recorded(rate_name("finished")), "{{queue}} finished"),
              target(recorded(rate_name("failed")), "{{queue}} failed")], "ops")
    b.series("Failure ratio", "Share of completed jobs that failed (over 5m: recorded).",
             [target(recorded_failure_ratio(), "{{queue}}")], "percentunit")
    b.series("Retried attempts", "Failed job attempts that RQ retried (Retry), per second (over 5m: recorded). "
             "Counted for the workers that listen to the queue alone: 0 for a queue served only by workers of "
             "several queues (README, RQ versions).",
             [target(recorded(RETRY_RATE), "{{queue}}")], "ops")
    b.series("Retry ratio", "Share of the job attempts (retried, finished, failed) that failed and were retried "
             "(over 5m: recorded); RQQueueRetryRateHigh watches it over its own window.",
             [target(recorded(RETRY_RATIO), "{{queue}}")], "percentunit")
    window = settings.backlog_window
    b.series(f"Backlog growth ({window})", f"How many jobs each queue gained over the last {window}, net: "
             f"what RQQueueBacklogGrowing compares with its threshold (recorded, {backlog_name(window)}).",
             [target(recorded(backlog_name(window)), "{{queue}}")], "short", w=24)
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
            top_exceptions(), [hide("Time"), rename_value("failed jobs")])
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
             longest_running(), "s")
    b.series("Jobs waiting for a rate limit", "RQ 3.0: jobs of each queue held back by their RateLimit "
             "until a job of the same limit key ends.",
             [rate_limited()], "short")
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
    # Sampled, not from RQ's working time: a scrape finds a worker busy as often as it runs jobs,
    # whatever their length, where the working time grows only when a job ends.
    busy = f'sum(count_over_time(rq_workers{{{WQ}, state="busy"}}[$__range]))'
    b.stat("Utilisation", "Share of the time the listed workers spent running jobs over the dashboard's range: "
           "the share of their scrapes that found them busy (rq_workers' state), so a long job counts while "
           "it runs. Busy share per worker, below, comes from RQ's working time instead.",
           f"({busy} or vector(0)) / sum(count_over_time(rq_workers{{{WQ}}}[$__range]))", "percentunit", w=6)
    b.series("Workers by state", "Live workers by state.",
             [target(f"sum by (state) (rq_live_workers{{{S}}})", "{{state}}")], "short", stacked=True)
    b.series("Workers per queue", "Workers (other than suspended ones) listening on each queue.",
             [target(f'sum by (queue) (rq_queue_workers{{{QS}, state!="suspended"}})', "{{queue}}")], "short")
    b.row("Each worker (per-worker metrics)")
    b.table("Workers", "Every live worker listening on the selected queues, with its queues and state.",
            f"rq_workers{{{WQ}}}", [hide("Time", "Value", "__name__", "job")], w=24)
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
            f"sum by (queue, func) (rq_scheduler_jobs{{{QS}}})", [hide("Time")])
    b.series("Overdue jobs per queue", "rq-scheduler jobs past due, by queue: with no rqscheduler they only grow.",
             [target(f"sum by (queue) (rq_scheduler_jobs_overdue{{{QS}}})", "{{queue}}")], "short")
    return dashboard("rq-schedules", "RQ / Schedules",
                     "RQ's cron scheduler (`rq cron`) and rq-scheduler: cron jobs, scheduled jobs, liveness.", b,
                     settings)


DASHBOARDS = {"rq-overview.json": overview, "rq-queue.json": queue, "rq-workers.json": workers,
              "rq-schedules.json": schedules, "rq-slo.json": service_levels}


def render(build, config: dict | None = None) -> str:
    """One dashboard's JSON, built from an alerts config (prometheus/alerts-config.yml by default)."""
    settings = Settings.of(config if config is not None else load_config())
    return json.dumps(build(settings), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a committed dashboard is stale")
    args = parser.parse_args(argv)
    try:
        config = load_config()
        files = {ROOT / "dashboards" / name: render(build, config) for name, build in DASHBOARDS.items()}
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    return write_or_check(files, args.check)


