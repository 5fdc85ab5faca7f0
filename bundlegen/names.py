"""The names the rules give and the dashboards read: groups, windows, recorded series."""

from __future__ import annotations

GROUP = "rq-exporter"
SLO_GROUP = "rq-exporter-slo"
RECORDING_GROUP = "rq-exporter-recording"
PERIOD_GROUP = "rq-exporter-slo-period"

# The rate window of the recorded per-queue rates, ratios and quantiles the dashboards read.
RATE_WINDOW = "5m"
QUANTILES = (0.5, 0.9, 0.95, 0.99)
# The objective kinds: the value of the `slo` label, and the alert burning each one's budget.
SLO_ALERTS = {"success": "RQJobErrorBudgetBurn", "wait": "RQJobWaitBudgetBurn"}


def rate_name(what: str, window: str = RATE_WINDOW) -> str:
    """queue:rq_jobs_<what>:rate5m: jobs finished or failed per second, per queue."""
    return f"queue:rq_jobs_{what}:rate{window}"


def increase_name(what: str, window: str) -> str:
    return f"queue:rq_jobs_{what}:increase{window}"


FAILURE_RATIO = f"queue:rq_jobs_failed:ratio_rate{RATE_WINDOW}"
RETRY_RATE = f"queue:rq_job_retries:rate{RATE_WINDOW}"
RETRY_RATIO = f"queue:rq_job_retries:ratio_rate{RATE_WINDOW}"  # of the attempts: retried + finished + failed
OBJECTIVE = "queue:rq_slo_objective:ratio"
WAIT_THRESHOLD = "queue:rq_slo_wait_threshold:seconds"
BUDGET_LEFT = "queue:rq_slo_error_budget_remaining:ratio"


def retries_increase_name(window: str) -> str:
    return f"queue:rq_job_retries:increase{window}"


def attempts_increase_name(window: str) -> str:
    """Job attempts over `window`: retried ones and the jobs that completed (finished or failed)."""
    return f"queue:rq_job_attempts:increase{window}"


def backlog_name(window: str) -> str:
    return f"queue:rq_jobs_queued:delta{window}"


def bucket_rate_name(histogram: str) -> str:
    return f"queue_le:{histogram}_bucket:rate{RATE_WINDOW}"


def quantile_name(histogram: str) -> str:
    return f"queue_quantile:{histogram}:histogram_quantile_rate{RATE_WINDOW}"


def errors_name(window: str) -> str:
    """The error ratio of every objective's SLI over `window` (label slo: success or wait)."""
    return f"queue:rq_slo_errors:ratio_rate{window}"


