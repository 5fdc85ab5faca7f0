"""Every concern the exporter reads (rq_exporter/concern.py), one line each, in order: a concern
comes after those it needs, and its families come out in this order, after the core ones."""

from __future__ import annotations

from rq_exporter.concern import AnyConcern
from rq_exporter.cron import Cron
from rq_exporter.exceptions import ExceptionClasses
from rq_exporter.failed_queue import FailedQueue
from rq_exporter.ratelimit import RateLimits
from rq_exporter.running import RunningJobs
from rq_exporter.schedules import Schedules
from rq_exporter.timing.job_timing import JobTiming

CONCERNS: tuple[type[AnyConcern], ...] = (
    FailedQueue,
    RateLimits,
    RunningJobs,
    Cron,
    Schedules,
    JobTiming,
    ExceptionClasses,
)
