"""End to end, the schedules: a real redis-server, real `rq cron` and `rqscheduler` processes (those of
the RQ version running the tests: scripts/test.sh runs this file under RQ 2.x and 3.0), the real
exporter, and a real Prometheus scraping it with the rules of prometheus/generate_rules.py (short
`for`). The schedulers run, nothing fires, every RQ / Schedules dashboard query has data; then each
is SIGKILLed and its alert fires: RQSchedulerJobsOverdue, RQCronJobLate, and RQCronSchedulerDown
once RQ's 120 s scheduler TTL has passed. The tests of this module run in file order on one stack.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jobs
import pytest
import yaml
from bundle import has_data, prometheus_api, queries, rule_generator, substitute, without_data
from redis import Redis

from devkit import free_port, stop_process, wait_for
from support import ROOT, Exporter, RedisServer, require_tool, worker_env

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


class Stack:
    def __init__(self, tmp: Path) -> None:
        prometheus = require_tool("prometheus")
        self.started = time.time()
        self.redis = RedisServer().start()
        self.url = self.redis.url
        self.conn = Redis(port=self.redis.port)
        self.exporter = Exporter("--redis-url", self.url)
        gen = rule_generator()
        config = gen.with_durations(gen.load_config(), for_="2s", window="20s")
        config["alerts"]["RQCronJobLate"]["grace_seconds"] = GRACE
        rules = tmp / "rq-alerts.yml"
        rules.write_text(gen.render(config))
        from demo.run import prometheus_config  # the demo's own rewrite of the bundled prometheus.yml

        base = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
        prom_config = tmp / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump(prometheus_config(
            base, f"127.0.0.1:{self.exporter.port}", [str(rules)], "1s")))
        self.prometheus_port = free_port()
        self.prometheus = subprocess.Popen(
            [prometheus, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.prometheus_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self._ready(), timeout=60, interval=0.2, what="Prometheus")
        (tmp / "cron_config.py").write_text(CRON_CONFIG)
        self.cron = self._spawn(tmp / "cron.log", [str(BIN / "rq"), "cron", str(tmp / "cron_config.py"),
                                                   "--url", self.url, "--logging-level", "warning"])
        self.rqscheduler = self._spawn(tmp / "rqscheduler.log",
                                       [str(BIN / "rqscheduler"), "--url", self.url, "--interval", "1"])

    def _spawn(self, log: Path, argv: list[str]) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(argv, env=worker_env(), stdout=out, stderr=subprocess.STDOUT)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.prometheus_port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def api(self, path: str, **params: str) -> dict:
        return prometheus_api(self.prometheus_port, path, **params)

    def value(self, expr: str) -> float | None:
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def has_data(self, expr: str) -> bool:
        return has_data(self.prometheus_port, expr, self.started)

    def alerts(self, state: str = "firing") -> set[tuple[str, str]]:
        return {(a["labels"]["alertname"], a["labels"].get("name", a["labels"].get("queue", "")))
                for a in self.api("alerts")["alerts"] if a["state"] == state}

    def stop(self) -> None:
        for process in (self.cron, self.rqscheduler):
            if process.poll() is None:
                process.kill()
                process.wait()
        stop_process(self.prometheus, 20)
        self.exporter.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("schedules"))
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
