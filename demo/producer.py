"""Enqueues a steady mix of demo jobs: successes, failures, retried jobs and scheduled jobs.

    python -m demo.producer --redis-url redis://localhost:6379/0 --rate 2
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from datetime import timedelta

from redis import Redis
from rq import Queue, Retry

QUEUES = ("high", "default", "low")

# (weight, what) of each kind of job; the weights give the demo a few percent of failures.
MIX = (
    (70, "success"),
    (10, "retried"),
    (10, "scheduled"),
    (5, "failure"),
    (5, "slow"),
)


def enqueue_one(queues: dict[str, Queue], rng: random.Random) -> str:
    kind = rng.choices([k for _, k in MIX], weights=[w for w, _ in MIX])[0]
    queue = queues[rng.choice(QUEUES)]
    if kind == "success":
        queue.enqueue("demo.jobs.process", rng.uniform(0.02, 0.3))
    elif kind == "slow":
        queue.enqueue("demo.jobs.process", rng.uniform(1.0, 2.0))
    elif kind == "failure":
        queue.enqueue("demo.jobs.fail")
    elif kind == "retried":
        # Retries with an interval go through the scheduler, as in production.
        queue.enqueue("demo.jobs.flaky", 0.5, retry=Retry(max=2, interval=1))
    else:
        queue.enqueue_in(timedelta(seconds=rng.randint(2, 20)), "demo.jobs.process", 0.05)
    return kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://localhost:6379/0")
    parser.add_argument("--rate", type=float, default=2.0, help="jobs per second")
    parser.add_argument("--count", type=int, default=0, help="stop after this many jobs (0: run until stopped)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    connection = Redis.from_url(args.redis_url)
    queues = {name: Queue(name, connection=connection) for name in QUEUES}
    rng = random.Random(args.seed)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sent = 0
    while not stopping and (args.count == 0 or sent < args.count):
        enqueue_one(queues, rng)
        sent += 1
        time.sleep(1.0 / args.rate)
    print(f"demo producer: enqueued {sent} jobs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
