"""End to end, the schedules: a real redis-server, real `rq cron` and `rqscheduler` processes (those of
the RQ version running the tests: scripts/test.sh runs this file under RQ 2.x and 3.0), the real
exporter, and a real Prometheus scraping it with the rules of prometheus/generate_rules.py (short
`for`). The schedulers run, nothing fires, every RQ / Schedules dashboard query has data; then each
is SIGKILLed and its alert fires: RQSchedulerJobsOverdue, RQCronJobLate, and RQCronSchedulerDown
once RQ's 120 s scheduler TTL has passed. The tests of this module run in file order on one stack.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jobs
import pytest
from bundle import queries, substitute, without_data
from e2e_stack import Stack

from devkit import wait_for

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]

BIN = Path(sys.executable).parent  # `rq` and `rqscheduler` of the RQ version running the tests
SCHEDULE_ALERTS = ("RQCronSchedulerDown", "RQCronJobLate", "RQSchedulerJobsOverdue")
CRON_CONFIG = """\
from rq import cron

import jobs

cron.register(jobs.sleep_for, queue_name="reports", interval=5, name="every5")
cron.register(jobs.sleep_for, queue_name="default", cron="* * * * *", name="minutely")
"""
GRACE = 15  # RQCronJobLate's grace: an every-5-s job of a live scheduler is never that late


def late_grace(config: dict) -> None:
    config["alerts"]["RQCronJobLate"]["grace_seconds"] = GRACE


class SchedulesStack(Stack):
    """The stack with `rq cron` and `rqscheduler` running against its Redis."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, rules=late_grace)
        (tmp / "cron_config.py").write_text(CRON_CONFIG)
        self.cron = self.spawn(tmp / "cron.log", [str(BIN / "rq"), "cron", str(tmp / "cron_config.py"),
                                                  "--url", self.url, "--logging-level", "warning"])
        self.rqscheduler = self.spawn(tmp / "rqscheduler.log",
                                      [str(BIN / "rqscheduler"), "--url", self.url, "--interval", "1"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = SchedulesStack(tmp_path_factory.mktemp("schedules"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def live(stack):
    """rq-scheduler jobs in place (a cron job registered twice, as at each deploy without cancelling),
    both schedulers seen alive by Prometheus."""
    from rq_scheduler import Scheduler

    scheduler = Scheduler(connection=stack.conn, queue_name="nightly")
    for _ in range(2):
        scheduler.cron("0 3 * * *", func=jobs.sleep_for, args=[0], queue_name="nightly")
    scheduler.enqueue_in(timedelta(hours=1), jobs.fail)
    wait_for(lambda: stack.value('rq_cron_schedulers{job="rq"} == 1') is not None
             and stack.value('rq_scheduler_up{job="rq"} == 1') is not None
             and stack.value('rq_scheduler_jobs{queue="nightly", func="jobs.sleep_for"}') == 2
             and stack.value('rq_cron_job_last_enqueue_timestamp_seconds{name="every5", queue="reports"}'),
             timeout=60, interval=0.5, what="both schedulers and their jobs in Prometheus")
    return stack


def test_live_schedulers_are_seen_and_no_schedule_alert_fires(live):
    time.sleep(12)  # two runs of the every-5-s job; with `for` 2s, a false alert would have fired
    assert live.value('rq_cron_job_schedulers{name="every5", queue="reports"}') == 1
    assert live.value('rq_cron_job_schedulers{name="minutely", queue="default"}') == 1
    assert live.value('rq_scheduler_jobs{queue="nightly", func="jobs.fail"}') == 1
    # The job it enqueued every 5 s: last enqueue within a run or two, next one in the future.
    assert live.value('time() - rq_cron_job_last_enqueue_timestamp_seconds{name="every5"}') < 12
    assert live.value('rq_cron_job_next_enqueue_timestamp_seconds{name="minutely"} - time()') > -GRACE
    ever = live.api("query_range", query=f'ALERTS{{alertname=~"{"|".join(SCHEDULE_ALERTS)}"}}',
                    start=str(live.started), end=str(time.time()), step="1")["result"]
    assert ever == [], ever
    assert not live.exporter.scrape().series("rq_exporter_skipped_total")


def test_every_schedules_dashboard_query_returns_data(live):
    exprs = {(title, expr): substitute(expr, rate_interval="15s") for name, title, expr in queries()
             if name == "rq-schedules.json"}
    assert len(exprs) >= 15
    missing = without_data(live.has_data, exprs)
    assert not missing, f"no data for: {missing}"


def test_a_killed_rqscheduler_fires_rq_scheduler_jobs_overdue(live):
    live.rqscheduler.send_signal(signal.SIGKILL)
    live.rqscheduler.wait()
    from rq_scheduler import Scheduler

    # 10 minutes past due, and nothing left to move it to its queue.
    Scheduler(connection=live.conn, queue_name="mail").enqueue_at(
        datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=10), jobs.sleep_for, 0)
    wait_for(lambda: ("RQSchedulerJobsOverdue", "mail") in live.alerts(), timeout=90, interval=0.5,
             what="RQSchedulerJobsOverdue firing")
    assert live.value('rq_scheduler_up{job="rq"}') == 0
    assert not {a for a in live.alerts() if a[0] == "RQSchedulerJobsOverdue"} - {("RQSchedulerJobsOverdue", "mail")}


def test_a_killed_rq_cron_fires_cron_job_late_then_cron_scheduler_down(live):
    (name,) = [n.decode() for n in live.conn.zrange("rq:cron_schedulers", 0, -1)]
    live.cron.send_signal(signal.SIGKILL)
    live.cron.wait()
    killed = time.time()
    last_beat = live.conn.zscore("rq:cron_schedulers", name)  # sent up to 5 s before the kill
    wait_for(lambda: ("RQCronJobLate", "every5") in live.alerts(), timeout=90, interval=0.5,
             what="RQCronJobLate firing")
    # Within RQ's 120 s TTL the killed scheduler still counts as alive.
    if time.time() - last_beat < 100:
        assert "RQCronSchedulerDown" not in {a for a, _ in live.alerts("firing") | live.alerts("pending")}
    wait_for(lambda: ("RQCronSchedulerDown", "") in live.alerts(), timeout=240, interval=1,
             what="RQCronSchedulerDown firing")
    assert time.time() - last_beat >= 120
    # Dead however long it stays listed; its hash has expired, and what was read of it is remembered.
    assert live.conn.zscore("rq:cron_schedulers", name) is not None
    assert not live.conn.exists(f"rq:cron_scheduler:{name}")
    samples = live.exporter.scrape()
    assert samples.value("rq_cron_schedulers") == 0 and samples.value("rq_cron_dead_schedulers") == 1
    late = samples.series("rq_cron_job_next_enqueue_timestamp_seconds")
    assert {dict(labels)["name"] for labels in late} == {"every5", "minutely"}
    assert all(value < killed + 60 for value in late.values())
