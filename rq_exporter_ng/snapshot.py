"""One read of RQ's state, as plain data: what the metrics are a pure function of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# Worker states RQ writes; rq_queue_workers and rq_live_workers always carry each of them.
WORKER_STATES = ("idle", "busy", "started", "suspended")


class QueueState(NamedTuple):
    """One per queue, every scrape: a NamedTuple, built in a fifth of a frozen dataclass's time."""

    name: str
    queued: int = 0
    intermediate: int = 0
    started: int = 0
    abandoned: int = 0
    finished: int = 0
    failed: int = 0
    deferred: int = 0
    scheduled: int = 0
    overdue_scheduled: int = 0
    canceled: int = 0
    # Failed jobs kept forever (failure_ttl=-1), part of ``failed``; None when it could not be read.
    failed_forever: int | None = 0
    scheduler_active: bool = False
    # Seconds the head job has waited; 0 when the queue is empty, None when unknown.
    oldest_job_age: float | None = 0.0
    # RQ 3.0: jobs waiting for a rate limit slot, in no queue or registry (rq_exporter_ng/concerns/rate_limits.py).
    rate_limited: int = 0


@dataclass(frozen=True)
class WorkerState:
    name: str
    queues: tuple[str, ...]
    state: str
    last_heartbeat: float | None = None
    # None when the field could not be read (the sample is left out, not reset to 0).
    successful_jobs: int | None = 0
    failed_jobs: int | None = 0
    working_seconds: float | None = 0.0
    # The hash's current_job (RQ <= 2.x, while busy); RQ 3.0 has none.
    current_job: str | None = None
    # The hash's version: the RQ version the worker runs (retries: Retry came with 1.5).
    rq_version: str | None = None


@dataclass(frozen=True)
class Problem:
    """Data the exporter could not use: skipped, counted, logged once."""

    reason: str
    key: str
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    time: float  # Redis server clock, epoch seconds
    queues: tuple[QueueState, ...] = ()
    workers: tuple[WorkerState, ...] = ()
    dead_workers: int = 0
    problems: tuple[Problem, ...] = ()
    round_trips: int = 0
    # Queue names only known because a worker listens on them (no rq:queues entry yet).
    worker_only_queues: tuple[str, ...] = field(default=())
