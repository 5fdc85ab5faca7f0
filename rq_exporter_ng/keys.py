"""RQ's key names in Redis, under one prefix (``rq`` unless RQ 3.0's RQ_KEY_PREFIX says otherwise).

Every module that addresses an RQ key takes it from here. Names stay bytes, so queue names
and job ids that are not UTF-8 still address their keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

# The per-queue key kinds: ``{prefix}:{kind}:{queue}``. "wip" is the started registry.
QUEUE_KINDS = ("queue", "wip", "finished", "failed", "deferred", "scheduled", "canceled", "scheduler-lock")


@dataclass(frozen=True)
class Keys:
    """Built once from ``--key-prefix`` (settings.py holds its default) and handed to every reader."""

    prefix: str

    @property
    def queues(self) -> bytes:
        """The set of every queue's key."""
        return f"{self.prefix}:queues".encode()

    @property
    def workers(self) -> bytes:
        """The set of every worker's key."""
        return f"{self.prefix}:workers".encode()

    @property
    def queue_member_prefix(self) -> bytes:
        """What members of ``queues`` start with: ``rq:queue:``."""
        return self.kind("queue")

    @property
    def worker_member_prefix(self) -> bytes:
        return self.kind("worker")

    def kind(self, kind: str) -> bytes:
        """``rq:{kind}:``, the start of every key of that kind."""
        return self.per_queue.get(kind) or f"{self.prefix}:{kind}:".encode()

    @cached_property
    def per_queue(self) -> dict[str, bytes]:
        """Each per-queue kind -> ``rq:{kind}:``, built once: a scrape addresses ~10 keys per queue."""
        return {kind: f"{self.prefix}:{kind}:".encode() for kind in (*QUEUE_KINDS, "job")}

    def of(self, kind: str, name: bytes) -> bytes:
        """``rq:{kind}:{name}``."""
        return self.kind(kind) + name

    def job(self, job_id: bytes) -> bytes:
        return self.kind("job") + job_id

    def intermediate(self, queue: bytes) -> bytes:
        """RQ 1.15+'s intermediate queue of ``queue``: jobs taken off it, not yet started."""
        return self.per_queue["queue"] + queue + b":intermediate"

    # RQ 3.0's rate limits (rq/rate_limit.py)
    @property
    def rate_limit_keys(self) -> bytes:
        """The set of the rate limit keys in use."""
        return f"{self.prefix}:rl-keys".encode()

    def rate_limited(self, limit_key: bytes) -> bytes:
        """The zset of the jobs waiting for a slot of ``limit_key``."""
        return self.of("rl", limit_key) + b":rate_limited"

    # RQ's cron (rq/cron_scheduler_registry.py, rq/cron_job_registry.py); each scheduler's hash is
    # of(cron_scheduler, name)
    @property
    def cron_schedulers(self) -> bytes:
        """The zset of cron scheduler names -> last heartbeat."""
        return f"{self.prefix}:cron_schedulers".encode()

    @property
    def cron_jobs(self) -> bytes:
        """The zset of cron job names -> last enqueue."""
        return f"{self.prefix}:cron_jobs".encode()

    # rq-scheduler (rq_scheduler/scheduler.py), whose names take the prefix all the same
    @property
    def scheduled_jobs(self) -> bytes:
        """rq-scheduler's zset of job ids -> when due."""
        return f"{self.prefix}:scheduler:scheduled_jobs".encode()

    @property
    def scheduler_instances(self) -> bytes:
        """A MATCH pattern of every running rqscheduler's hash."""
        return f"{self.prefix}:scheduler_instance:*".encode()
