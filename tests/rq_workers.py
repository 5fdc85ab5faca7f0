"""RQ worker classes the tests with real workers run: `rq worker -w rq_workers.QuickHeartbeatWorker`.

RQ keeps a started job's heartbeat deadline and a worker hash alive for 60 s past the last
heartbeat (min(job timeout, monitoring interval) + 60; worker_ttl + 60). A worker killed with
SIGKILL therefore shows up as an abandoned job and a dead worker only a minute later. This is
RQ's own Worker with those margins cut to a few seconds and a heartbeat every second, so the
tests see the same Redis states within seconds. Everything else is RQ's code, unchanged; the
method signatures are the ones RQ 2.x and 3.0 share.
"""

from __future__ import annotations

from rq import Worker

HEARTBEAT_MARGIN = 3  # seconds a started job's deadline lies past its last heartbeat (RQ: 60)
WORKER_KEY_TTL = 10  # seconds a worker hash lives past its last heartbeat (RQ: worker_ttl + 60)


class QuickHeartbeatWorker(Worker):
    def __init__(self, *args, **kwargs) -> None:
        kwargs["job_monitoring_interval"] = 1
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job, *args, **kwargs) -> int:
        return super().get_heartbeat_ttl(job, *args, **kwargs) - 60 + HEARTBEAT_MARGIN

    def heartbeat(self, timeout=None, pipeline=None):
        return super().heartbeat(min(timeout or WORKER_KEY_TTL, WORKER_KEY_TTL), pipeline=pipeline)
