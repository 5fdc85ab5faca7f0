"""The schedules for a benchmark run (bench/run.py --schedules N): N rq-scheduler jobs and one `rq cron`
scheduler with 50 cron jobs, in the layouts of rq-scheduler 0.14 and RQ 2.12 (rq_exporter_ng/concerns/rq_scheduler.py,
rq_exporter_ng/concerns/cron.py). No rqscheduler instance is registered, so the exporter takes its SCAN step on
every scrape: the dearest case."""

from __future__ import annotations

import json
import pickle
import time
import zlib

import redis

from devkit import rq_time

CRON_JOBS = 50
FUNCS = 50


def fill_schedules(client: redis.Redis, jobs: int, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for i in range(jobs):
        data = zlib.compress(pickle.dumps((f"bench.jobs.task_{i % FUNCS}", None, (), {}), protocol=4))
        pipe.hset(f"rq:job:sched-{i}", mapping={"origin": f"queue-{i % 100:04d}", "data": data,
                                                "status": "scheduled", "enqueued_at": "",
                                                "created_at": rq_time(now - 3600)})
        # One in ten past due; the rest over the next day.
        pipe.zadd("rq:scheduler:scheduled_jobs", {f"sched-{i}": now - 60 if i % 10 == 0 else now + i % 86400})
        if i % 1000 == 999:
            pipe.execute()
    cron_jobs = [{"func_name": f"bench.jobs.cron_{k}", "name": f"cron_{k}", "queue_name": f"queue-{k:04d}",
                  "interval": 60, "cron": None, "latest_enqueue_time": rq_time(now - 30),
                  "next_enqueue_time": rq_time(now + 30), "result_ttl": 500} for k in range(CRON_JOBS)]
    pipe.zadd("rq:cron_schedulers", {"bench:1:abcdef": now})
    pipe.hset("rq:cron_scheduler:bench:1:abcdef", mapping={"hostname": "bench", "pid": "1", "name": "bench:1:abcdef",
                                                          "created_at": rq_time(now - 60), "config_file": "c.py",
                                                          "cron_jobs": json.dumps(cron_jobs)})
    pipe.zadd("rq:cron_jobs", {f"cron_{k}": now - 30 for k in range(CRON_JOBS)})
    pipe.execute()
    return {"rq_scheduler_jobs": jobs, "cron_jobs": CRON_JOBS}
