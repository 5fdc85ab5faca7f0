"""The demo's `rq cron` jobs, loaded by `rq cron demo.cron_config` (make demo, and the compose
stack's rq-cron service): the RQ / Schedules dashboard and the schedule alerts have something to show."""

from rq import cron

from demo import jobs

cron.register(jobs.process, queue_name="default", interval=30, name="demo-every-30s", args=(0.05,))
cron.register(jobs.process, queue_name="low", cron="*/5 * * * *", name="demo-every-5min", args=(0.05,))
