"""End to end: RQJobRunningTooLong fires live, naming the job's function. A real RQ worker runs a job that does not end, the
real exporter reads Redis, and a real Prometheus with the generated rules (the bundled
prometheus.yml, as the demo points it at a local exporter) scrapes it every second: the stack of
tests/e2e_stack.py, with the rule's threshold lowered to 3 s; a queue whose jobs end at once stays
silent, and the alert resolves once the job ends.
"""

from __future__ import annotations

import os
import signal
import time

import jobs
import pytest
from e2e_stack import Stack
from rq import Queue

from devkit import wait_for
from support import kill_if_alive

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]

THRESHOLD = 3  # seconds a job may run before the alert (bundled: 3600)


def lowered(config: dict) -> None:
    config["alerts"]["RQJobRunningTooLong"]["max_run_seconds"] = THRESHOLD


def running_too_long(stack: Stack, state: str = "firing") -> set[str]:
    return {queue for name, queue in stack.alerts(state, ("queue",)) if name == "RQJobRunningTooLong"}


def test_a_job_running_too_long_fires_the_alert_live(tmp_path):
    stack = Stack(tmp_path, rules=lowered)
    horse = None
    try:
        conn = stack.conn
        pid_file = tmp_path / "horse.pid"
        Queue("long", connection=conn).enqueue(jobs.pid_then_sleep, str(pid_file), 600, job_timeout=900)
        quick = Queue("quick", connection=conn)
        stack.worker("long", name="w-long")
        stack.worker("quick", name="w-quick")
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the long job to start")
        horse = int(pid_file.read_text())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "long" not in running_too_long(stack):
            quick.enqueue(jobs.sleep_for, 0)  # jobs of the other queue start and end all along
            time.sleep(0.5)
        assert running_too_long(stack) == {"long"}, stack.api("alerts")["alerts"]
        # The alert names the function (jobs.pid_then_sleep), in its labels and its description.
        firing = [a for a in stack.api("alerts")["alerts"]
                  if a["state"] == "firing" and a["labels"]["alertname"] == "RQJobRunningTooLong"]
        assert [a["labels"]["func"] for a in firing] == ["jobs.pid_then_sleep"], firing
        assert "jobs.pid_then_sleep in queue long" in firing[0]["annotations"]["description"]
        value = stack.value('rq_queue_longest_running_job_seconds{queue="long"}')
        assert value > THRESHOLD
        assert stack.value('rq_queue_longest_running_job_by_func_seconds{queue="long", func="jobs.pid_then_sleep"}') \
            > THRESHOLD
        assert conn.zcard("rq:finished:quick") > 0  # the silent queue did run jobs

        os.kill(horse, signal.SIGKILL)  # the job ends (failed): the alert resolves
        wait_for(lambda: not running_too_long(stack) and not running_too_long(stack, "pending"), timeout=30,
                 interval=0.5, what="RQJobRunningTooLong resolved")
    finally:
        stack.stop()
        kill_if_alive(horse)
