"""Enqueues a test scenario with whatever RQ version imports here, using that version's own API.

Run by tests/test_rq_versions.py with the Python of one of the RQ environments that
scripts/rq_venvs.sh makes (RQ 0.13 on Python 3.9 up to RQ 3.x), from tests/ so that ``jobs``
(the job functions the workers run) imports:

    .venv-rq/1.7.0/bin/python tests/rq_scenario.py --url redis://... main

It prints one JSON line: the RQ version, the features used or skipped because the version lacks
them, and the jobs enqueued (ids and queues). It runs under Python 3.9 and any RQ from 0.13 on,
and imports neither the exporter, devkit nor pytest.

It also holds ShortTTLWorker, the worker class (``rq worker -w rq_scenario.ShortTTLWorker``) the
test runs where a version cannot make a busy worker's hash expire soon by its command line alone.

Scenarios:

- ``history``: on queue ``work``, one job that succeeds and one that fails; run before the
  exporter's first scrape, so they are in the registries (or RQ 0.x's failed queue) but are not
  new to the exporter.
- ``main``: on ``work``, SUCCEEDED jobs that succeed, FAILED jobs that fail, one failing job
  retried RETRIES times (Retry, RQ >= 1.5), and one job that depends on a job of ``parked``
  (deferred); on ``parked`` (no worker serves it) that parent, one job canceled (RQ >= 1.10 keeps
  it in the canceled registry; older versions' Job.cancel only takes it out of the queue), and
  two scheduled jobs (enqueue_in, RQ >= 1.2): one due in an hour, one due in a second, overdue
  soon since no scheduler runs.
- ``hang``: on ``hang``, one job that writes its work horse's pid to ``--pid-file`` and sleeps.
- ``retries`` (RQ >= 1.5), each job counting its attempts in a file of ``--dir``: on ``retry``,
  RECOVERED jobs with Retry(max=RETRIES) that fail RETRIES times then succeed, one that always
  fails (RETRIES retries, then failed for good) and one failing job without Retry; with jobs that
  return Retry (RQ >= 2.x), one that returns it RETRIES times then succeeds and one that returns
  Retry(max=1) each time (one retry, then failed). On ``multi``, served by a worker of several
  queues, MULTI jobs with Retry(max=RETRIES) that always fail.
"""

import argparse
import json
import platform
from datetime import timedelta

import jobs
import redis
import rq
from rq import Queue, Worker

SUCCEEDED = 3
FAILED = 2
RETRIES = 2
RECOVERED = 2
MULTI = 2
KEY_TTL = 8  # seconds: ShortTTLWorker's cap on a worker hash's TTL


class ShortTTLWorker(Worker):
    """RQ's own worker with its hash's TTL capped at KEY_TTL seconds.

    From RQ 1.0 on, a busy worker sets its hash to expire job_monitoring_interval + 60 seconds
    after each heartbeat, so a SIGKILLed worker looks alive and busy for at least a minute (RQ 0.13:
    job_monitoring_interval + 5, short with --job-monitoring-interval alone). Everything else is
    the version's code: ``heartbeat(timeout, pipeline)`` has this signature in every version.
    """

    def heartbeat(self, timeout=None, pipeline=None):
        return super().heartbeat(min(timeout or KEY_TTL, KEY_TTL), pipeline=pipeline)


def features():
    """What this RQ has, by its API (never by its version number)."""
    try:
        from rq import Retry  # noqa: F401  (RQ >= 1.5)
        retry = True
    except ImportError:
        retry = False
    try:
        from rq.registry import CanceledJobRegistry  # noqa: F401  (RQ >= 1.10)
        canceled = True
    except ImportError:
        canceled = False
    return {
        "retry": retry,
        "scheduled": hasattr(Queue, "enqueue_in"),  # RQ >= 1.2, with the workers' built-in scheduler
        "canceled_registry": canceled,
        "depends_on": True,
    }


def history(conn):
    work = Queue("work", connection=conn)
    return {"succeed": [work.enqueue(jobs.sleep_for, 0).id], "fail": [work.enqueue(jobs.fail).id]}


def main_scenario(conn, have):
    work = Queue("work", connection=conn)
    parked = Queue("parked", connection=conn)
    done = {
        "succeed": [work.enqueue(jobs.sleep_for, 0).id for _ in range(SUCCEEDED)],
        "fail": [work.enqueue(jobs.fail).id for _ in range(FAILED)],
    }
    if have["retry"]:
        from rq import Retry
        done["retried"] = [work.enqueue(jobs.fail, retry=Retry(max=RETRIES)).id]
    parent = parked.enqueue(jobs.sleep_for, 0)
    done["parent"] = [parent.id]
    done["deferred"] = [work.enqueue(jobs.sleep_for, 0, depends_on=parent).id]
    canceled = parked.enqueue(jobs.sleep_for, 0)
    canceled.cancel()
    done["canceled"] = [canceled.id]
    if have["scheduled"]:
        done["scheduled_later"] = [parked.enqueue_in(timedelta(hours=1), jobs.sleep_for, 0).id]
        done["scheduled_due"] = [parked.enqueue_in(timedelta(seconds=1), jobs.sleep_for, 0).id]
    return done


def hang(conn, pid_file):
    return {"hang": [Queue("hang", connection=conn).enqueue(jobs.pid_then_sleep, pid_file, 600).id]}


def returns_retry():
    """RQ >= 2.x retries a job that returns Retry (Worker.handle_job_retry)."""
    return hasattr(Worker, "handle_job_retry")


def retries(conn, folder):
    from rq import Retry

    retry, multi = Queue("retry", connection=conn), Queue("multi", connection=conn)

    def path(name):
        return f"{folder}/{name}"

    done = {
        "recovered": [retry.enqueue(jobs.fail_then_succeed, path(f"recovered-{i}"), RETRIES,
                                    retry=Retry(max=RETRIES)).id for i in range(RECOVERED)],
        "exhausted": [retry.enqueue(jobs.fail, retry=Retry(max=RETRIES)).id],
        "plain_failure": [retry.enqueue(jobs.fail).id],
        "multi": [multi.enqueue(jobs.fail, retry=Retry(max=RETRIES)).id for _ in range(MULTI)],
    }
    if returns_retry():
        done["returned"] = [retry.enqueue(jobs.return_retry, path("returned"), RETRIES, RETRIES + 1).id]
        done["returned_exhausted"] = [retry.enqueue(jobs.return_retry, path("returned-exhausted"), 99, 1).id]
    return done


def run(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--pid-file")
    parser.add_argument("--dir", help="retries: where the jobs count their attempts")
    parser.add_argument("scenario", choices=("history", "main", "hang", "retries"))
    args = parser.parse_args(argv)
    conn = redis.Redis.from_url(args.url)
    have = features()
    if args.scenario == "history":
        done = history(conn)
    elif args.scenario == "main":
        done = main_scenario(conn, have)
    elif args.scenario == "retries":
        if not args.dir or not have["retry"]:
            parser.error("retries needs --dir and RQ >= 1.5")
        done = retries(conn, args.dir)
        have = dict(have, returns_retry=returns_retry())
    else:
        if not args.pid_file:
            parser.error("hang needs --pid-file")
        done = hang(conn, args.pid_file)
    skipped = sorted(name for name, present in have.items() if not present)
    print(json.dumps({"rq": rq.__version__, "python": platform.python_version(),
                      "scenario": args.scenario, "features": have, "skipped": skipped, "jobs": done}))


if __name__ == "__main__":
    run()
