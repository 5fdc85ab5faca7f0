"""Every concern the exporter reads (rq_exporter_ng/concern.py), one line each, in order: a concern
comes after those it needs, and its families come out in this order, after the core ones."""

from __future__ import annotations

from rq_exporter_ng.concern import AnyConcern
from rq_exporter_ng.concerns.cron import Cron
from rq_exporter_ng.concerns.exception_classes import ExceptionClasses
from rq_exporter_ng.concerns.failed_queue import FailedQueue
from rq_exporter_ng.concerns.rate_limits import RateLimits
from rq_exporter_ng.concerns.redis_health import RedisHealth
from rq_exporter_ng.concerns.retries import Retries
from rq_exporter_ng.concerns.rq_scheduler import RqScheduler
from rq_exporter_ng.concerns.running_jobs import RunningJobs
from rq_exporter_ng.concerns.timing.job_timing import JobTiming

CONCERNS: tuple[type[AnyConcern], ...] = (
    FailedQueue,
    RateLimits,
    RunningJobs,
    Cron,
    RqScheduler,
    JobTiming,
    ExceptionClasses,
    Retries,
    RedisHealth,
)
