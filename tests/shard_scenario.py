"""RQ data for the sharding tests (tests/test_shards.py, tests/test_e2e_shards.py), under RQ 2.x or
3.0: 8 queues over 3 shards, real RQ workers listening to queues of several shards, jobs finished,
failed, queued, deferred, scheduled and one running on; an unsharded exporter and 3 shards started
before any job ends, so that their job timing counters count the same jobs."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import jobs
from redis import Redis
from rq import Queue

from devkit import wait_for
from rq_exporter_ng.shards import shard_of
from support import Exporter, RQWorker, kill_if_alive

# Owners among 3 shards: emails, billing, imports: 0; default, high, reports: 1; low, gamma: 2.
QUEUES = ("emails", "billing", "imports", "default", "high", "reports", "low", "gamma")
SHARDS = 3
ENDED = 20  # jobs that finish or fail
FAILED = 5


@dataclass
class Scenario:
    whole: Exporter  # unsharded
    shards: list[Exporter]
    logs: list[str] = field(default_factory=list)  # what each exporter logged, once stopped

    @property
    def exporters(self) -> list[Exporter]:
        return [self.whole, *self.shards]


# The same split by queue patterns: shard 0's queues, and the global series, by name.
BY_PATTERNS = (["--queue-include", "emails,billing,imp*", "--shard-globals"],
               ["--queue-include", "default,high,reports", "--no-shard-globals"],
               ["--queue-include", "*", "--queue-exclude", "emails,billing,imp*,default,high,reports",
                "--no-shard-globals"])
BY_HASH = tuple(["--shard", f"{i}/{SHARDS}"] for i in range(SHARDS))


@contextmanager
def scenario(url: str, conn: Redis, tmp: Path, started: Callable[[Scenario], object] = lambda found: None,
             shard_args: tuple[list[str], ...] = BY_HASH, frozen_while_jobs_end: bool = False) -> Iterator[Scenario]:
    """The exporters and the data, every job that will end ended; the workers stay alive (one busy
    with the running job) until the block ends, then everything stops. ``started`` is called once
    the exporters serve, before any job.

    ``frozen_while_jobs_end``: the exporters are stopped (SIGSTOP) from before the first job that
    ends until the last has ended, so each counts them all in one scrape. Otherwise an exporter's
    scrapes split the jobs of a queue at instants of its own, and a histogram series that appears
    with its first jobs gives Prometheus' rate() no increase for those (no earlier sample): how
    many depends on the split, so rates differ between exporters for reasons that are not theirs."""
    assert [shard_of(q, SHARDS) for q in QUEUES] == [0, 0, 0, 1, 1, 1, 2, 2]
    whole = Exporter("--redis-url", url)
    shards = []
    workers: list[RQWorker] = []
    horse = None
    found: Scenario | None = None
    try:
        shards += [Exporter("--redis-url", url, *args) for args in shard_args]
        found = Scenario(whole, shards)
        for e in found.exporters:  # the timing counters start here, before any job ends, in every exporter
            assert e.scrape().value("rq_up") == 1
        started(found)
        q = {name: Queue(name, connection=conn) for name in QUEUES}
        # A job that runs on, of shard 1's queue, on a worker that also listens to shard 0's queue.
        pid_file = tmp / "horse.pid"
        q["reports"].enqueue(jobs.pid_then_sleep, str(pid_file), 600, job_timeout=900)
        workers.append(RQWorker(url, "reports", "imports", name="w-long"))
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the long job to start")
        horse = int(pid_file.read_text())
        wait_for(lambda: conn.hget("rq:worker:w-long", "state") == b"busy", timeout=10, what="w-long busy")
        if frozen_while_jobs_end:
            for e in found.exporters:
                e.process.send_signal(signal.SIGSTOP)
        for name in ("emails", "billing", "default", "high", "low"):
            for _ in range(3):
                q[name].enqueue(jobs.sleep_for, 0)
            q[name].enqueue(jobs.fail)
        q["imports"].enqueue(jobs.sleep_for, 0)  # queued: its only worker is busy
        head = q["gamma"].enqueue(jobs.sleep_for, 0)  # no worker: queued, and a job deferred after it
        q["gamma"].enqueue(jobs.sleep_for, 0, depends_on=head)
        q["emails"].enqueue_in(timedelta(hours=1), jobs.sleep_for, 0)
        workers.append(RQWorker(url, "emails", "default", "low", name="w-a"))
        workers.append(RQWorker(url, "high", "billing", "low", name="w-b"))

        def all_done() -> bool:
            ended = sum(conn.zcard(f"rq:finished:{n}") + conn.zcard(f"rq:failed:{n}") for n in QUEUES)
            idle = all(conn.hget(f"rq:worker:{w}", "state") == b"idle" for w in ("w-a", "w-b"))
            return ended == ENDED and idle

        wait_for(all_done, timeout=60, what=f"{ENDED} jobs to end")
        if frozen_while_jobs_end:
            for e in found.exporters:
                e.process.send_signal(signal.SIGCONT)
        yield found
    finally:
        if frozen_while_jobs_end and found is not None:
            for e in found.exporters:
                e.process.send_signal(signal.SIGCONT)  # to stop it: a stopped process ignores SIGTERM
        logs = [e.stop() for e in [whole, *shards]]
        if found is not None:
            found.logs = logs
        for w in workers:
            w.kill()
        kill_if_alive(horse)
