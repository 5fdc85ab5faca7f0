"""Each threshold alert's PromQL, summary and description, built from its settings in `alerts:`."""

from __future__ import annotations

from collections.abc import Callable

from bundlegen.config import Ctx
from bundlegen.names import attempts_increase_name, backlog_name, increase_name, retries_increase_name


def _exporter_down(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"up{{{c.s}}} == 0 or absent(up{{{c.s}}})",
        "The RQ exporter cannot be scraped.",
        "Prometheus cannot scrape the RQ exporter {{ $labels.instance }} (job {{ $labels.job }}), "
        "or the target is gone: RQ is not monitored.",
    )


def _redis_unreachable(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_up{{{c.s}}} == 0",
        "The RQ exporter cannot read Redis.",
        "The RQ exporter {{ $labels.instance }} answers but cannot read RQ's state from Redis "
        "(rq_up 0); its log says why.",
    )


# --- The Redis under RQ (rq_exporter_ng/concerns/redis_health.py: rq_redis_*, one INFO a scrape) --
def _redis_eviction_policy(c: Ctx, a: dict) -> tuple[str, str, str]:
    # Without a limit (maxmemory 0) Redis never evicts, whatever the policy.
    return (
        f"rq_redis_maxmemory_policy_info{{{c.s}, policy!=\"noeviction\"}}\n"
        f"and on ({c.ji})\nrq_redis_memory_max_bytes{{{c.s}}} > 0",
        "Redis may evict RQ's keys.",
        "Redis behind {{ $labels.instance }} has a memory limit and maxmemory-policy {{ $labels.policy }}: "
        "at the limit it deletes keys, RQ's jobs, queues and registry entries among them, and RQ never notices.",
    )


def _redis_evicting(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"increase(rq_redis_evicted_keys_total{{{c.s}}}[{a['window']}]) > 0",
        "Redis is evicting keys: RQ jobs may be lost.",
        f"Redis behind {{{{ $labels.instance }}}} evicted {{{{ $value | humanize }}}} keys in the last "
        f"{a['window']} to stay under its memory limit: RQ's jobs, queues or registry entries may be gone.",
    )


def _redis_memory(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_redis_memory_used_bytes{{{c.s}}}\n/ on ({c.ji})\n(rq_redis_memory_max_bytes{{{c.s}}} > 0)\n"
        f"> {a['max_ratio']}",
        "Redis is near its memory limit.",
        "Redis behind {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its maxmemory: next it "
        "evicts keys, or with noeviction refuses writes and every RQ enqueue fails with OOM.",
    )


def _redis_persistence(c: Ctx, a: dict) -> tuple[str, str, str]:
    # A label per failure, so that a failing BGSAVE and a failing AOF write are two alerts, each named.
    return (
        f"label_replace(rq_redis_rdb_last_bgsave_ok{{{c.s}}} == 0, \"failed\", \"rdb_bgsave\", \"\", \"\")\n"
        f"or\nlabel_replace(rq_redis_aof_last_write_ok{{{c.s}}} == 0, \"failed\", \"aof_write\", \"\", \"\")",
        "Redis cannot persist its data.",
        "The last {{ $labels.failed }} of Redis behind {{ $labels.instance }} failed: a restart now loses "
        "RQ's jobs written since its last good save.",
    )


def _redis_restarted_without_aof(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"resets(rq_redis_uptime_seconds{{{c.s}}}[{a['window']}]) > 0\n"
        f"and on ({c.ji})\nrq_redis_aof_enabled{{{c.s}}} == 0",
        "Redis restarted without AOF: recent RQ jobs are lost.",
        f"Redis behind {{{{ $labels.instance }}}} restarted in the last {a['window']} with AOF off: every write "
        f"since its last RDB snapshot (jobs enqueued, results, registry entries) is lost.",
    )


def _redis_master_link(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_redis_master_link_up{{{c.s}}} == 0",
        "The Redis replica RQ is read from lost its master.",
        "The exporter {{ $labels.instance }} reads a Redis replica whose link to its master is down: "
        "the RQ state it reports is stale.",
    )


def _all_workers_gone(c: Ctx, a: dict) -> tuple[str, str, str]:
    # The second branch catches the worker series vanishing while the exporter still reads Redis.
    # rq_redis_info_readable, not rq_up == 1: it is there exactly when rq_up is 1, but only from the
    # exporter that exports the global series, so the other shards of a sharded set (--shard,
    # which have no worker series) do not fire it.
    return (
        f"sum by ({c.ji}) (rq_live_workers{{{c.s}}}) == 0\n"
        f"or\n"
        f"(group by ({c.ji}) (rq_redis_info_readable{{{c.s}}})"
        f" unless on ({c.ji}) group by ({c.ji}) (rq_live_workers{{{c.s}}}))",
        "No RQ worker is alive.",
        "Redis behind {{ $labels.instance }} has no live RQ worker: no job of any queue is processed.",
    )


def _queue_without_workers(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_jobs{{{c.s}, status=\"queued\"}} >= {a['min_queued']}\n"
        f"unless on ({c.q})\n"
        f"(sum by ({c.q}) (rq_queue_workers{{{c.s}, state!=\"suspended\"}}) > 0)",
        "An RQ queue has jobs and no worker.",
        "Queue {{ $labels.queue }} ({{ $labels.instance }}) holds {{ $value }} queued jobs "
        "and no worker listens on it.",
    )


def _failures_growing(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"sum by ({c.q}) (increase(rq_jobs_failed_total{{{c.s}}}[{a['window']}])) > {a['max_failures']}",
        "RQ jobs are failing.",
        f"{{{{ $value | humanize }}}} jobs of queue {{{{ $labels.queue }}}} ({{{{ $labels.instance }}}}) "
        f"failed in the last {a['window']}.",
    )


def _failure_ratio(c: Ctx, a: dict) -> tuple[str, str, str]:
    # Recorded (rq-recording.yml): each increase is computed once instead of three times.
    failed, completed = increase_name("failed", a["window"]), increase_name("completed", a["window"])
    return (
        f"{failed}\n/ {completed}\n> {a['max_ratio']}\n"
        f"and on ({c.q})\n{completed} >= {a['min_completed']}",
        "A high share of RQ jobs fail.",
        f"{{{{ $value | humanizePercentage }}}} of the jobs of queue {{{{ $labels.queue }}}} "
        f"({{{{ $labels.instance }}}}) that completed in the last {a['window']} failed.",
    )


def _retry_rate(c: Ctx, a: dict) -> tuple[str, str, str]:
    # Recorded: retried attempts over all attempts, each increase computed once.
    retried, attempts = retries_increase_name(a["window"]), attempts_increase_name(a["window"])
    return (
        f"{retried}\n/ {attempts}\n> {a['max_ratio']}\n"
        f"and on ({c.q})\n{attempts} >= {a['min_attempts']}",
        "A high share of RQ job attempts fail and are retried.",
        f"{{{{ $value | humanizePercentage }}}} of the job attempts of queue {{{{ $labels.queue }}}} "
        f"({{{{ $labels.instance }}}}) in the last {a['window']} failed and were retried.",
    )


def _backlog_growing(c: Ctx, a: dict) -> tuple[str, str, str]:
    # Recorded: RQ / Queue shows the same series ("Backlog growth").
    return (
        f"{backlog_name(a['window'])} > {a['min_growth']}",
        "An RQ queue keeps growing.",
        f"Queue {{{{ $labels.queue }}}} ({{{{ $labels.instance }}}}) grew by {{{{ $value | humanize }}}} jobs "
        f"in the last {a['window']}: the workers do not keep up.",
    )


def _oldest_job(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_queue_oldest_job_age_seconds{{{c.s}}} > {a['max_age_seconds']}",
        "Jobs wait too long in an RQ queue.",
        "The next job of queue {{ $labels.queue }} ({{ $labels.instance }}) has waited "
        "{{ $value | humanizeDuration }}.",
    )


def _running_too_long(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_queue_longest_running_job_by_func_seconds{{{c.s}}} > {a['max_run_seconds']}",
        "An RQ job has been running too long.",
        "A started job of {{ $labels.func }} in queue {{ $labels.queue }} ({{ $labels.instance }}) has been "
        "running for "
        "{{ $value | humanizeDuration }}: hung, or slower than it should be.",
    )


def _abandoned(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_queue_abandoned_jobs{{{c.s}}} > 0",
        "Started RQ jobs lost their worker.",
        "{{ $value }} started jobs of queue {{ $labels.queue }} ({{ $labels.instance }}) passed their "
        "heartbeat deadline: their worker died (killed, OOM, lost host).",
    )


def _scheduled_overdue(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_queue_overdue_scheduled_jobs{{{c.s}}} > 0",
        "Scheduled RQ jobs are overdue.",
        "{{ $value }} scheduled jobs of queue {{ $labels.queue }} ({{ $labels.instance }}) are past due: "
        "is a worker running with --with-scheduler for this queue?",
    )


def _dead_workers(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_dead_workers{{{c.s}}} > {a['max_dead']}",
        "Dead RQ workers pile up.",
        "{{ $value }} workers in Redis behind {{ $labels.instance }} were killed without a clean exit "
        "and are still listed in RQ's worker set.",
    )


def _cron_scheduler_down(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_cron_jobs{{{c.s}}} > 0\nand on ({c.ji})\nrq_cron_schedulers{{{c.s}}} == 0",
        "No RQ cron scheduler is alive.",
        "{{ $value }} cron jobs are known in Redis behind {{ $labels.instance }} and no `rq cron` scheduler "
        "is alive: none of them is enqueued.",
    )


def _cron_job_late(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"time() - rq_cron_job_next_enqueue_timestamp_seconds{{{c.s}}} > {a['grace_seconds']}",
        "An RQ cron job was not enqueued when due.",
        "Cron job {{ $labels.name }} of queue {{ $labels.queue }} ({{ $labels.instance }}) was due "
        "{{ $value | humanizeDuration }} ago and has not been enqueued: is its `rq cron` scheduler alive?",
    )


def _rq_scheduler_overdue(c: Ctx, a: dict) -> tuple[str, str, str]:
    return (
        f"rq_scheduler_jobs_overdue{{{c.s}}} > 0\nand on ({c.ji})\nrq_scheduler_up{{{c.s}}} == 0",
        "rq-scheduler jobs are overdue and no rqscheduler runs.",
        "{{ $value }} rq-scheduler jobs of queue {{ $labels.queue }} ({{ $labels.instance }}) are past due "
        "and no `rqscheduler` process is alive to move them to the queue.",
    )


RULES: dict[str, Callable[[Ctx, dict], tuple[str, str, str]]] = {
    "RQExporterDown": _exporter_down,
    "RQRedisUnreachable": _redis_unreachable,
    "RQRedisEvictionPolicyUnsafe": _redis_eviction_policy,
    "RQRedisEvictingKeys": _redis_evicting,
    "RQRedisMemoryNearLimit": _redis_memory,
    "RQRedisPersistenceFailing": _redis_persistence,
    "RQRedisRestartedWithoutAof": _redis_restarted_without_aof,
    "RQRedisMasterLinkDown": _redis_master_link,
    "RQAllWorkersGone": _all_workers_gone,
    "RQQueueWithoutWorkers": _queue_without_workers,
    "RQJobFailuresGrowing": _failures_growing,
    "RQJobFailureRatioHigh": _failure_ratio,
    "RQQueueRetryRateHigh": _retry_rate,
    "RQQueueBacklogGrowing": _backlog_growing,
    "RQOldestJobTooOld": _oldest_job,
    "RQJobRunningTooLong": _running_too_long,
    "RQAbandonedJobs": _abandoned,
    "RQScheduledJobsOverdue": _scheduled_overdue,
    "RQDeadWorkersPilingUp": _dead_workers,
    "RQCronSchedulerDown": _cron_scheduler_down,
    "RQCronJobLate": _cron_job_late,
    "RQSchedulerJobsOverdue": _rq_scheduler_overdue,
}


