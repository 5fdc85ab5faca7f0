"""Every metric the exporter can expose: the one list the code, the README table and the tests use.

Run ``python -m rq_exporter_ng.families.catalogue`` to print the README's metric table.
"""

from __future__ import annotations

from dataclasses import dataclass

# rq_jobs{status}: rq-exporter 3.x's six statuses, plus canceled and RQ 3.0's rate_limited (0 on every
# queue of every version, so that a sum over statuses never changes shape with the RQ version).
JOB_STATUSES = ("queued", "started", "finished", "failed", "deferred", "scheduled", "canceled", "rate_limited")


# Which exporters of a sharded set (--shard, README "Running at scale") export a family:
QUEUE = "queue"  # each its own queues' series: a queue's series come from the one shard that owns it
GLOBAL = "global"  # workers, schedules, the Redis server: one exporter only (--shard-globals)
EXPORTER = "exporter"  # the exporter's own state (rq_up, self-metrics): every exporter
SCOPES = (QUEUE, GLOBAL, EXPORTER)
SCOPE_OF_GROUP = {"queue": QUEUE, "timing": QUEUE, "exporter": EXPORTER, "worker": GLOBAL, "schedule": GLOBAL,
                  "redis": GLOBAL}


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed; counters end in _total
    type: str  # gauge | counter | histogram
    help: str
    labels: tuple[str, ...] = ()
    group: str = "queue"
    note: str = ""  # when the metric is present, shown in the README table
    scope: str = ""  # one of SCOPES; "": the group's (SCOPE_OF_GROUP)

    def __post_init__(self) -> None:
        if not self.scope:
            object.__setattr__(self, "scope", SCOPE_OF_GROUP[self.group])
        if self.scope not in SCOPES:
            raise ValueError(f"{self.name}: scope {self.scope!r} is none of {SCOPES}")


PER_WORKER = "per-worker: off with `--no-per-worker-metrics`"
TIMING = "off with `--no-job-timing`"
FUNC = "`func` label with `--timing-func-label`"
REDIS = "from `INFO`: needs `+info`"

CATALOGUE: tuple[MetricSpec, ...] = (
    # --- the exporter itself -----------------------------------------------------------
    MetricSpec("rq_up", "gauge", "1 when this scrape read RQ's state from Redis, 0 when it could not.",
               group="exporter"),
    MetricSpec("rq_exporter_scrape_duration_seconds", "gauge",
               "Seconds this scrape took to read Redis and work out its figures (writing the metrics out, "
               "a family at a time, comes after).", group="exporter"),
    MetricSpec("rq_exporter_redis_round_trips", "gauge",
               "Redis round trips this scrape made (at most 3 for the gauges).", group="exporter"),
    MetricSpec("rq_exporter_scrapes_total", "counter",
               "Reads of Redis for scrapes since the exporter started (scrapes that arrive during a read share "
               "it and count once).", group="exporter"),
    MetricSpec("rq_exporter_scrape_errors_total", "counter", "Scrapes in which Redis could not be read (rq_up 0).",
               group="exporter"),
    MetricSpec("rq_exporter_skipped_total", "counter",
               "Redis entries skipped because they were missing, of the wrong type or malformed, by reason.",
               ("reason",), group="exporter"),
    MetricSpec("rq_exporter_build_info", "gauge", "Always 1; the exporter's version and runtime as labels.",
               ("version", "python_version"), group="exporter"),
    # rq-exporter 3.x's name: its Grafana dashboard (grafana.com 12196) charts _sum / _count.
    MetricSpec("rq_request_processing_seconds", "summary",
               "Scrapes served (_count) and seconds spent collecting RQ data (_sum); rq-exporter 3.x's name.",
               group="exporter"),
    # --- queues ---------------------------------------------------------------------------
    MetricSpec("rq_jobs", "gauge",
               "Jobs per queue and status, as RQ counts them after its cleanup (expired entries left out).",
               ("queue", "status"), note="status: " + ", ".join(JOB_STATUSES)),
    MetricSpec("rq_queue_workers", "gauge", "Live workers listening on the queue, by state.", ("queue", "state")),
    MetricSpec("rq_queue_oldest_job_age_seconds", "gauge",
               "Seconds since the job at the head of the queue was enqueued; 0 when the queue is empty.", ("queue",)),
    MetricSpec("rq_queue_intermediate_jobs", "gauge",
               "Jobs a worker has taken off the queue but not yet started (RQ 1.15+ intermediate queue).", ("queue",)),
    MetricSpec("rq_queue_abandoned_jobs", "gauge",
               "Started jobs whose heartbeat deadline has passed: their worker died. RQ moves them to failed "
               "at its next maintenance.", ("queue",)),
    MetricSpec("rq_queue_overdue_scheduled_jobs", "gauge",
               "Scheduled jobs whose time has come but which are still in the scheduled registry.", ("queue",)),
    MetricSpec("rq_queue_scheduler_active", "gauge", "1 while an RQ scheduler holds the queue's scheduler lock.",
               ("queue",)),
    MetricSpec("rq_queue_longest_running_job_seconds", "gauge",
               "Seconds the queue's longest-running started job has been running (now - started_at); 0 when "
               "none runs. Abandoned jobs (heartbeat deadline passed) are left out.", ("queue",)),
    MetricSpec("rq_queue_longest_running_job_by_func_seconds", "gauge",
               "Seconds the longest-running started job of each queue and function (from the job's data, never "
               "unpickled) has been running; a series only while such a job runs. Abandoned jobs are left out.",
               ("queue", "func"),
               note="func capped by `--timing-func-limit` (the longest runs kept), the rest `other`; "
                    "`unknown` when the job's data is unreadable"),
    # --- job timing (--job-timing) ---------------------------------------------------------
    MetricSpec("rq_job_duration_seconds", "histogram",
               "Run time (ended_at - started_at) of jobs that finished or failed since the exporter started.",
               ("queue", "status"), group="timing", note=TIMING + "; status: finished, failed; " + FUNC),
    MetricSpec("rq_job_wait_seconds", "histogram",
               "Time from enqueued_at to started_at of jobs that finished or failed since the exporter started.",
               ("queue",), group="timing", note=TIMING + "; " + FUNC),
    MetricSpec("rq_jobs_finished_total", "counter",
               "Jobs that finished since the exporter started, however results expire and workers come and go.",
               ("queue",), group="timing", note=TIMING),
    MetricSpec("rq_jobs_failed_total", "counter",
               "Jobs that failed (for good, after their retries) since the exporter started.",
               ("queue",), group="timing", note=TIMING),
    MetricSpec("rq_job_exceptions_total", "counter",
               "Jobs that failed since the exporter started (as rq_jobs_failed_total), by the class of the "
               "exception their traceback ends with; unknown without one (abandoned, work horse killed, not "
               "read), other past --exception-label-limit classes.",
               ("queue", "exception"), group="timing", note=TIMING),
    # Attempts, not jobs (a job retried twice counts 2), hence rq_job_ like rq_job_exceptions_total.
    MetricSpec("rq_job_retries_total", "counter",
               "Failed job attempts that RQ retried (Retry: re-enqueued or scheduled) since the exporter started: "
               "the failed attempts of the workers that listen to the queue alone, less its jobs that failed for "
               "good. Exact for such workers; a lower bound with workers of several queues (README, RQ versions).",
               ("queue",), group="timing", note=TIMING),
    MetricSpec("rq_exporter_jobs_not_timed_total", "counter",
               "Finished or failed jobs counted but not timed: past --timing-max-jobs-per-scrape, kept forever "
               "(TTL -1) or without start/end times.", ("queue",), group="timing", note=TIMING),
    # --- schedules: RQ's `rq cron` (concerns/cron.py) and rq-scheduler (concerns/rq_scheduler.py) ---
    MetricSpec("rq_cron_schedulers", "gauge",
               "Live RQ cron schedulers (`rq cron`): listed in rq:cron_schedulers with a heartbeat within RQ's "
               "120 s TTL.", group="schedule"),
    MetricSpec("rq_cron_dead_schedulers", "gauge",
               "Cron schedulers still listed in rq:cron_schedulers whose heartbeat is older than 120 s (killed "
               "without a clean stop).", group="schedule"),
    MetricSpec("rq_cron_jobs", "gauge",
               "Distinct cron job names known: in a listed cron scheduler's jobs or in rq:cron_jobs.",
               group="schedule"),
    MetricSpec("rq_cron_job_schedulers", "gauge",
               "Live cron schedulers running the cron job: more than 1 enqueues it more than once.",
               ("name", "queue"), group="schedule"),
    MetricSpec("rq_cron_job_next_enqueue_timestamp_seconds", "gauge",
               "When the cron scheduler will next enqueue the cron job (as last read from a listed scheduler).",
               ("name", "queue"), group="schedule"),
    MetricSpec("rq_cron_job_last_enqueue_timestamp_seconds", "gauge",
               "When the cron job was last enqueued (queue empty when only rq:cron_jobs still knows it).",
               ("name", "queue"), group="schedule"),
    MetricSpec("rq_scheduler_jobs", "gauge",
               "Jobs rq-scheduler holds (rq:scheduler:scheduled_jobs) per queue (origin) and function; a cron "
               "job registered twice counts 2.", ("queue", "func"), group="schedule",
               note="func capped by `--timing-func-limit`, the rest `other`"),
    MetricSpec("rq_scheduler_jobs_overdue", "gauge",
               "rq-scheduler jobs whose time has come and which are still waiting to be moved to their queue.",
               ("queue",), group="schedule"),
    MetricSpec("rq_scheduler_jobs_untracked", "gauge",
               "rq-scheduler jobs past the first 20,000 by due time, counted but not read (no queue or func).",
               group="schedule"),
    MetricSpec("rq_scheduler_up", "gauge",
               "1 while a live rqscheduler process is known (its rq:scheduler_instance hash, found by SCAN).",
               group="schedule"),
    # --- workers --------------------------------------------------------------------------
    MetricSpec("rq_live_workers", "gauge", "Live workers by state (present even when 0).", ("state",), group="worker"),
    MetricSpec("rq_dead_workers", "gauge",
               "Workers listed in RQ's worker set whose hash has expired (killed without a clean exit) or "
               "holds only counters, as a work horse leaves it after its worker was killed.",
               group="worker"),
    MetricSpec("rq_workers", "gauge", "Always 1 for each live worker; its queues and state as labels.",
               ("name", "queues", "state"), group="worker", note=PER_WORKER),
    MetricSpec("rq_workers_success_total", "counter", "Jobs the worker finished successfully.", ("name", "queues"),
               group="worker", note=PER_WORKER),
    MetricSpec("rq_workers_failed_total", "counter", "Job attempts of the worker that failed (retries included).",
               ("name", "queues"), group="worker", note=PER_WORKER),
    MetricSpec("rq_workers_working_time_total", "counter", "Seconds the worker has spent running jobs.",
               ("name", "queues"), group="worker", note=PER_WORKER),
    MetricSpec("rq_worker_last_heartbeat_timestamp_seconds", "gauge",
               "When the worker last sent a heartbeat (an idle worker's can be ~400 s old).",
               ("name", "queues"), group="worker", note=PER_WORKER),
    MetricSpec("rq_worker_current_job_seconds", "gauge",
               "Seconds the worker's current job has been running; 0 when it runs none (of the queues the "
               "exporter reads).", ("name", "queues"), group="worker", note=PER_WORKER),
    # --- the Redis under RQ: one INFO a scrape (rq_exporter_ng/concerns/redis_health.py) --------------
    MetricSpec("rq_redis_info_readable", "gauge",
               "1 when this scrape could run INFO on Redis; 0 when Redis refused it (an ACL user needs +info): "
               "the other rq_redis_* series are then left out, RQ's are not.", group="redis"),
    MetricSpec("rq_redis_maxmemory_policy_info", "gauge",
               "Always 1; Redis' maxmemory-policy as a label. Any policy but noeviction lets Redis delete RQ's "
               "keys (jobs, queues, registries) once used memory reaches maxmemory.", ("policy",), group="redis",
               note=REDIS),
    MetricSpec("rq_redis_memory_used_bytes", "gauge", "Bytes of memory Redis has allocated (INFO used_memory).",
               group="redis", note=REDIS),
    MetricSpec("rq_redis_memory_max_bytes", "gauge",
               "Redis' maxmemory in bytes; 0: no limit. At the limit Redis evicts keys, or with noeviction "
               "refuses writes (RQ's enqueue fails with OOM).", group="redis", note=REDIS),
    MetricSpec("rq_redis_evicted_keys_total", "counter",
               "Keys Redis deleted to stay under maxmemory since it started (INFO evicted_keys): RQ's among them "
               "are lost jobs, queues or registry entries.", group="redis", note=REDIS),
    MetricSpec("rq_redis_aof_enabled", "gauge",
               "1 when Redis writes an append-only file; 0: a restart loses the writes since the last RDB save.",
               group="redis", note=REDIS),
    MetricSpec("rq_redis_aof_last_write_ok", "gauge", "1 when Redis' last write to its append-only file succeeded.",
               group="redis", note=REDIS),
    MetricSpec("rq_redis_rdb_last_bgsave_ok", "gauge", "1 when Redis' last RDB snapshot (BGSAVE) succeeded.",
               group="redis", note=REDIS),
    MetricSpec("rq_redis_rdb_last_save_timestamp_seconds", "gauge",
               "When Redis last saved an RDB snapshot successfully (or started, without one).", group="redis",
               note=REDIS),
    MetricSpec("rq_redis_rdb_changes_since_last_save", "gauge",
               "Writes to Redis since its last RDB snapshot: lost by a restart without AOF.", group="redis",
               note=REDIS),
    MetricSpec("rq_redis_role_info", "gauge", "Always 1; the Redis' replication role as a label (master, replica).",
               ("role",), group="redis", note=REDIS),
    MetricSpec("rq_redis_master_link_up", "gauge",
               "1 while the replica the exporter reads is connected to its master; 0: it serves stale data.",
               group="redis", note=REDIS + "; replicas only"),
    MetricSpec("rq_redis_uptime_seconds", "gauge", "Seconds since Redis started: a drop is a restart.",
               group="redis", note=REDIS),
    MetricSpec("rq_redis_server_info", "gauge",
               "Always 1; the Redis version and the run id (new at every restart) as labels.",
               ("version", "run_id"), group="redis", note=REDIS),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
# Family names (a counter's without _total, as prometheus_client names its family) of scope GLOBAL.
GLOBAL_FAMILIES = frozenset(s.name.removesuffix("_total") if s.type == "counter" else s.name
                            for s in CATALOGUE if s.scope == GLOBAL)


def spec(name: str) -> MetricSpec:
    return BY_NAME[name]


SHARDED = {QUEUE: "its queues'", GLOBAL: "one", EXPORTER: "each"}  # the README table's words


def markdown_table() -> str:
    rows = ["| metric | type | labels | sharded | description |", "|---|---|---|---|---|"]
    for m in CATALOGUE:
        labels = ", ".join(f"`{label}`" for label in m.labels) or "-"
        note = f" ({m.note})" if m.note else ""
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {SHARDED[m.scope]} | {m.help}{note} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
