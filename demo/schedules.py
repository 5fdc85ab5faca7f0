"""The demo's schedules: RQ's own `rq cron` (its jobs in demo/cron_config.py) and rq-scheduler's
`rqscheduler`, so that the RQ / Schedules dashboard and the schedule alerts have something to show.
demo/run.py wires it as

    from demo import schedules
    for name, argv in schedules.processes(self.redis_url):
        self.spawn(name, argv, env)
    schedules.seed(client)

and the compose stack's rq-scheduler service seeds with `python -m demo.schedules --seed URL`
before it starts `rqscheduler` (which comes with rq-scheduler: the pyproject `test` extra, and
demo/Dockerfile). Kill either process to watch RQCronJobLate / RQCronSchedulerDown or
RQSchedulerJobsOverdue fire.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import redis

CRON_CONFIG = "demo.cron_config"  # a module: the repository root (or /app in the image) on PYTHONPATH


def processes(redis_url: str) -> list[tuple[str, list[str]]]:
    """(name, argv) of `rq cron` and, when rq-scheduler is installed, `rqscheduler`."""
    bin_dir = Path(sys.executable).parent
    out = [("rq-cron", [str(bin_dir / "rq"), "cron", CRON_CONFIG, "--url", redis_url, "--logging-level", "warning"])]
    rqscheduler = bin_dir / "rqscheduler"
    if rqscheduler.exists() or shutil.which("rqscheduler"):
        out.append(("rqscheduler", [str(rqscheduler if rqscheduler.exists() else shutil.which("rqscheduler")),
                                    "--url", redis_url, "--interval", "10"]))
    return out


def seed(client: redis.Redis) -> None:
    """rq-scheduler jobs: a cron job registered twice (as a deploy that does not cancel the old one
    leaves it) and a one-off job in an hour. Nothing when rq-scheduler is not installed, or when it
    holds jobs already (a restarted container of the compose stack does not add them again)."""
    try:
        from rq_scheduler import Scheduler
    except ImportError:
        return
    scheduler = Scheduler(connection=client, queue_name="low")
    if scheduler.count():
        return
    with warnings.catch_warnings():
        # crontab's notice about its own future default (utcnow), printed in the demo's console by
        # rq-scheduler's call: nothing the demo or its user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        for _ in range(2):
            scheduler.cron("*/10 * * * *", func="demo.jobs.process", args=[0.05], queue_name="low")
    scheduler.enqueue_in(timedelta(hours=1), "demo.jobs.process", 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description="Adds the demo's rq-scheduler jobs (the compose stack's).")
    parser.add_argument("--seed", metavar="REDIS_URL", required=True)
    url = parser.parse_args().seed
    try:
        client = redis.Redis.from_url(url)
    except ValueError as error:
        parser.error(f"--seed: {error}")  # one line, exit 2
    try:
        seed(client)
    except redis.RedisError as error:
        sys.exit(f"demo.schedules: cannot seed {url}: {error}")


if __name__ == "__main__":
    main()
