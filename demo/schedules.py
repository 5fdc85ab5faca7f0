"""The demo's schedules: RQ's own `rq cron` and rq-scheduler's `rqscheduler`, so that the RQ / Schedules
dashboard and the schedule alerts have something to show. Self-contained; demo/run.py wires it as

    from demo import schedules
    for name, argv in schedules.processes(self.redis_url, self.tmp):
        self.spawn(name, argv, env)
    schedules.seed(client)

(`rqscheduler` comes with rq-scheduler, in the pyproject `test` extra). Kill either process to watch
RQCronJobLate / RQCronSchedulerDown or RQSchedulerJobsOverdue fire.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import redis

CRON_CONFIG = """\
from rq import cron

from demo import jobs

cron.register(jobs.process, queue_name="default", interval=30, name="demo-every-30s", args=(0.05,))
cron.register(jobs.process, queue_name="low", cron="*/5 * * * *", name="demo-every-5min", args=(0.05,))
"""


def processes(redis_url: str, tmp: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of `rq cron` and, when rq-scheduler is installed, `rqscheduler`."""
    config = tmp / "demo_cron.py"
    config.write_text(CRON_CONFIG)
    bin_dir = Path(sys.executable).parent
    out = [("rq-cron", [str(bin_dir / "rq"), "cron", str(config), "--url", redis_url, "--logging-level", "warning"])]
    rqscheduler = bin_dir / "rqscheduler"
    if rqscheduler.exists() or shutil.which("rqscheduler"):
        out.append(("rqscheduler", [str(rqscheduler if rqscheduler.exists() else shutil.which("rqscheduler")),
                                    "--url", redis_url, "--interval", "10"]))
    return out


def seed(client: redis.Redis) -> None:
    """rq-scheduler jobs: a cron job registered twice (as a deploy that does not cancel the old one
    leaves it) and a one-off job in an hour. Nothing when rq-scheduler is not installed."""
    try:
        from rq_scheduler import Scheduler
    except ImportError:
        return
    scheduler = Scheduler(connection=client, queue_name="low")
    with warnings.catch_warnings():
        # crontab's notice about its own future default (utcnow), printed in the demo's console by
        # rq-scheduler's call: nothing the demo or its user can act on.
        warnings.simplefilter("ignore", FutureWarning)
        for _ in range(2):
            scheduler.cron("*/10 * * * *", func="demo.jobs.process", args=[0.05], queue_name="low")
    scheduler.enqueue_in(timedelta(hours=1), "demo.jobs.process", 0.05)

