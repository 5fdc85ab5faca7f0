"""Every concern the exporter reads (rq_exporter/concern.py), one line each, in order: a concern
comes after those it needs, and its families come out in this order, after the core ones."""

from __future__ import annotations

from rq_exporter.concern import AnyConcern
from rq_exporter.concerns.cron import Cron
from rq_exporter.concerns.exception_classes import ExceptionClasses
from rq_exporter.concerns.failed_queue import FailedQueue
from rq_exporter.concerns.rate_limits import RateLimits
from rq_exporter.concerns.redis_health import RedisHealth
from rq_exporter.concerns.rq_scheduler import RqScheduler
from rq_exporter.concerns.running_jobs import RunningJobs
from rq_exporter.concerns.timing.job_timing import JobTiming

CONCERNS: tuple[type[AnyConcern], ...] = (
    FailedQueue,
    RateLimits,
    RunningJobs,
    Cron,
    RqScheduler,
    JobTiming,
    ExceptionClasses,
    RedisHealth,
)
