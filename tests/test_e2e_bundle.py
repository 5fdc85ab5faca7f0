"""End to end: the local demo (`make demo`: redis-server, RQ workers, the producer, the exporter and a
real Prometheus loaded with prometheus/ config and the generated rules, with short `for` and windows),
then every alert firing live (the fast page of a service level objective too), every dashboard
query, and the queries of rq-exporter's Grafana dashboard 12196."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bundle import generated_dashboards, queries, substitute, without_data
from e2e_stack import SLO_WINDOWS, Demo
from redis import Redis
from rq import Queue, Retry

from devkit import wait_for
from support import RQWorker

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]

# The queries of rq-exporter's dashboard (grafana.com 12196, grafana/rq-dashboard.json of
# mdawar/rq-exporter), verbatim: users switching exporters keep this dashboard.
GRAFANA_12196 = [
    'count(rq_workers{job="$job", instance="$instance"}) or vector(0)',
    '(count(rq_workers{state="busy", job="$job", instance="$instance"}) / count(rq_workers{job="$job", instance="$instance"})) * 100',
    '(count(rq_workers{state="idle", job="$job", instance="$instance"}) / count(rq_workers{job="$job", instance="$instance"})) * 100',
    'sum(rq_jobs{status="queued", job="$job", instance="$instance"}) by (queue)',
    'sum(rq_jobs{status="started", job="$job", instance="$instance"}) by (queue)',
    'sum(rq_jobs{status="finished", job="$job", instance="$instance"}) by (queue)',
    'sum(rq_jobs{status="failed", job="$job", instance="$instance"}) by (queue)',
    'sum(rq_jobs{status="deferred", job="$job", instance="$instance"}) by (queue)',
    'sum(rq_jobs{status="scheduled", job="$job", instance="$instance"}) by (queue)',
    'rate(rq_request_processing_seconds_sum[$__range]) /rate(rq_request_processing_seconds_count[$__range])',
    'sum(rq_jobs{status="queued", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{status="started", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{status="finished", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{status="failed", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{status="deferred", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{status="scheduled", job="$job", instance="$instance"}) / sum(rq_jobs{job="$job", instance="$instance"})',
    'sum by (status) (rq_jobs{job="$job", instance="$instance"}) / ignoring(status) group_left sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{job="$job", instance="$instance"}) by (status)',
    'sum by (queue) (rq_jobs{job="$job", instance="$instance"}) / ignoring(queue) group_left sum(rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{job="$job", instance="$instance"}) by (queue)',
    'sum by (status, queue) (rq_jobs{job="$job", instance="$instance"}) / ignoring(status) group_left sum by (queue) (rq_jobs{job="$job", instance="$instance"})',
    'sum(rq_jobs{job="$job", instance="$instance"}) by (queue, status)',
]
GRAFANA_12196_VARIABLES = ['{__name__=~"rq_.*"}']  # label_values(<this>, job) and (..., instance)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    stack = Demo(tmp_path_factory.mktemp("demo"))
    yield stack
    stack.stop()


def counting(demo) -> bool:
    result = demo.api("query", query="sum(rq_jobs_finished_total)")["result"]
    return bool(result) and float(result[0]["value"][1]) > 0


@pytest.fixture(scope="module")
def scenario(demo) -> set[tuple[str, str]]:
    """Jobs in a queue no worker serves (one of them scheduled and overdue) and a burst of
    failures; returns the alerts firing once the expected ones do. Later tests stop workers and
    Redis, so the tests of this module run in file order on one stack."""
    # The job counters start at the exporter's first scrape (README, Job timing): start the
    # failures once they count the demo's completions.
    wait_for(lambda: counting(demo), timeout=30, interval=0.5, what="rq_jobs_finished_total counting")
    redis = Redis(port=demo.redis_port)
    orphan = Queue("orphan", connection=redis)  # no worker listens on it
    orphan.enqueue("demo.jobs.process", 0.01)
    wait_for(lambda: demo.api("query", query='rq_jobs{queue="orphan", status="queued"}')["result"],
             timeout=10, interval=0.2, what="the orphan queue scraped")
    for _ in range(5):  # the backlog grows
        orphan.enqueue("demo.jobs.process", 0.01)
    # Due half a minute ago, in a queue no scheduler holds.
    orphan.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=30), "demo.jobs.process", 0.01)
    high = Queue("high", connection=redis)
    for _ in range(30):
        high.enqueue("demo.jobs.fail")
    # What 11 workers killed without a clean exit leave once their hashes expired, and what a job
    # of a killed worker leaves in the started registry once its heartbeat deadline passed: RQ's
    # layout written directly, as with RQ's own timings they take minutes to appear.
    redis.sadd("rq:workers", *[f"rq:worker:killed-{i}" for i in range(11)])
    redis.zadd("rq:wip:orphan", {"abandoned-job:1": int(time.time()) - 60})
    # A member of RQ's queue set that is no queue key: skipped and counted on every scrape.
    redis.sadd("rq:queues", "not-an-rq-queue-key")

    # The burst of failures burns "high"'s 99 % success objective at more than 14.4x over both the
    # (shortened) 60 s and 30 s windows: the fast page.
    expected = {("RQQueueWithoutWorkers", "orphan"), ("RQJobFailuresGrowing", "high"),
                ("RQJobFailureRatioHigh", "high"), ("RQJobErrorBudgetBurn", "high"),
                ("RQScheduledJobsOverdue", "orphan"), ("RQOldestJobTooOld", "orphan"),
                ("RQQueueBacklogGrowing", "orphan"), ("RQDeadWorkersPilingUp", ""), ("RQAbandonedJobs", "orphan")}
    try:
        wait_for(lambda: expected <= demo.firing(), timeout=60, interval=0.5, what=f"alerts {expected} firing")
    except AssertionError:
        failed = demo.api("query", query="rq_jobs_failed_total[40s]")["result"]
        raise AssertionError(f"firing: {sorted(demo.firing())}\nrq_jobs_failed_total: {failed}\n"
                             f"{demo.output()[-3000:]}") from None
    return demo.firing()


def test_queue_and_failure_alerts_fire_live(scenario):
    # (the expected ones fired: see the fixture) The queues with workers are not "without workers".
    assert not {q for name, q in scenario if name == "RQQueueWithoutWorkers"} - {"orphan"}
    assert not {name for name, _ in scenario} & {"RQRedisUnreachable", "RQExporterDown", "RQAllWorkersGone"}


def test_the_fast_page_of_the_success_objective_fires_live(demo, scenario):
    """RQJobErrorBudgetBurn on what the real exporter counted of real workers failing real jobs, with
    the labels and the description an on-call person gets."""
    (page,) = [a for a in demo.firing_alerts("RQJobErrorBudgetBurn")
               if a["labels"]["queue"] == "high" and a["labels"]["long"] == SLO_WINDOWS["1h"]]
    labels, annotations = page["labels"], page["annotations"]
    assert (labels["severity"], labels["short"], labels["slo"], labels["objective"]) == \
        ("critical", SLO_WINDOWS["5m"], "success", "99")
    assert (labels["job"], labels["instance"]) == ("rq", demo.instance)
    assert float(page["value"]) > 14.4  # the burn rate over the long window
    assert annotations["description"].startswith(f"Queue high ({demo.instance}) fails ")
    assert "99 % success objective allows, over the last 60s and 30s" in annotations["description"]
    assert annotations["dashboard_url"].endswith(f"/d/rq-slo?var-job=rq&var-instance={demo.instance}&var-queue=high")
    assert annotations["runbook_url"].endswith("#rqjoberrorbudgetburn")


def test_retries_fire_live(demo, scenario):
    """RQQueueRetryRateHigh on a real worker of one queue retrying real jobs (Retry). The demo's
    workers of high and default listen to both, whose retries cannot be given a queue (README, RQ
    versions); its last worker has low to itself, whose random retries (a tenth of the jobs, Retry
    on a coin toss) count and may cross the threshold on their own."""
    redis = Redis(port=demo.redis_port)
    queue = Queue("retrying", connection=redis)
    worker = RQWorker(f"redis://127.0.0.1:{demo.redis_port}/0", "retrying", name="retrying")
    try:
        # The queue and its counters exist (at 0) before the retries: increase() sees a counter's
        # first sample as its start, whatever its value.
        queue.enqueue("jobs.sleep_for", 0)
        wait_for(lambda: demo.value('sum(rq_job_retries_total{queue="retrying"})') == 0
                 and demo.value('sum(rq_jobs_finished_total{queue="retrying"})') == 1
                 and demo.has_data('rq_workers{name="retrying"}'), timeout=30, interval=0.5,
                 what="the retrying queue and its worker scraped")
        for _ in range(10):  # 3 retries each, then failed for good: 30 of 41 attempts retried
            queue.enqueue("jobs.fail", retry=Retry(max=3))
        try:
            wait_for(lambda: ("RQQueueRetryRateHigh", "retrying") in demo.firing(), timeout=40, interval=0.5,
                     what="RQQueueRetryRateHigh firing for retrying")
        except AssertionError:
            seen = {expr: demo.query(expr) for expr in (
                'rq_job_retries_total{queue="retrying"}[40s]', 'rq_jobs_failed_total{queue="retrying"}[40s]',
                '{__name__=~"queue:rq_job_(retries|attempts):increase20s", queue="retrying"}[40s]')}
            raise AssertionError(f"firing: {sorted(demo.firing())}\n{seen}") from None
        (alert,) = [a for a in demo.firing_alerts("RQQueueRetryRateHigh") if a["labels"]["queue"] == "retrying"]
        assert float(alert["value"]) > 0.2  # the threshold (the share grows and shrinks as the attempts run)
        assert alert["annotations"]["description"].endswith(
            f"of the job attempts of queue retrying ({demo.instance}) in the last 20s failed and were retried.")
        wait_for(lambda: demo.value('sum(rq_job_retries_total{queue="retrying"})') == 30, timeout=20, interval=0.5,
                 what="every retry counted, once")
        # The demo's queues served by workers of several queues count no retry.
        assert not {q for name, q in demo.firing() if name == "RQQueueRetryRateHigh"} & {"high", "default"}
        assert demo.value('sum(rq_job_retries_total{queue=~"high|default"})') == 0
    finally:
        worker.stop()  # a clean exit: later tests count the demo's workers alone


def test_every_dashboard_query_returns_data(demo, scenario):
    # rq-schedules.json's queries need schedulers started and killed: tests/test_e2e_schedules.py runs them.
    # The dashboards as generated from the demo's config: they read what its rules record.
    boards = generated_dashboards(demo.config)
    assert set(boards) == {name for name, _, _ in queries()} and "rq-slo.json" in boards
    missing = without_data(demo.has_data, {(name, title, expr): substitute(expr, rate_interval="15s")
                                           for name, title, expr in queries(boards) if name != "rq-schedules.json"})
    assert not missing, f"no data for: {missing}"


def test_the_demo_runs_its_schedules(demo):
    """`rq cron` with demo/cron_config.py's two jobs and rqscheduler with demo/schedules.py's three
    (a cron job registered twice and a one-off in an hour): what the compose stack's rq-cron and
    rq-scheduler services run too (tests/test_bundle_stack.py checks they run the same)."""
    wanted = {"rq_cron_schedulers": 1.0, "rq_cron_jobs": 2.0, 'sum(rq_scheduler_jobs{queue="low"})': 3.0,
              "rq_scheduler_up": 1.0}

    def values() -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for query in wanted:
            result = demo.api("query", query=query)["result"]
            out[query] = float(result[0]["value"][1]) if result else None
        return out

    wait_for(lambda: values() == wanted, timeout=60, interval=0.5,
             what=f"the demo's schedules scraped ({values()} at the start, wanted {wanted})")


def test_grafana_12196_dashboard_keeps_working(demo):
    wait_for(lambda: demo.has_data("rq_up"), timeout=20, what="a scrape")
    for variable in GRAFANA_12196_VARIABLES:
        series = demo.api("series", **{"match[]": variable})
        assert {s["job"] for s in series} == {"rq"} and demo.instance in {s["instance"] for s in series}
    # The demo's two workers can be busy at every scrape; its "idle workers" panel needs an idle
    # one: a real worker on a queue of its own, seen idle by at least one scrape.
    spare = RQWorker(f"redis://127.0.0.1:{demo.redis_port}/0", "spare", name="spare")
    try:
        wait_for(lambda: demo.has_data('rq_workers{name="spare", state="idle"}'), timeout=30, interval=0.5,
                 what="the spare worker scraped as idle")
        empty = [q for q in GRAFANA_12196
                 if not demo.has_data(substitute(q, job="rq", instance=demo.instance, range_="1m"))]
    finally:
        spare.stop()
    assert not empty, f"no data for: {empty}"


def exporter_pid(port: int) -> int:
    wanted = ["-m", "rq_exporter_ng", "--port", str(port)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if all(arg in argv for arg in wanted):
                return int(entry)
    raise AssertionError(f"no exporter process on port {port}")


def test_a_frozen_exporter_fires_exporter_down(demo, scenario):
    pid = exporter_pid(demo.exporter_port)
    os.kill(pid, signal.SIGSTOP)  # scrapes time out: up 0
    try:
        wait_for(lambda: ("RQExporterDown", "") in demo.firing(), timeout=30, interval=0.5,
                 what="RQExporterDown firing")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: ("RQExporterDown", "") not in demo.firing(), timeout=20, interval=0.5,
             what="RQExporterDown resolved")


def test_stopping_every_worker_fires_all_workers_gone(demo, scenario):
    redis = Redis(port=demo.redis_port)
    pids = [int(pid) for pid in (redis.hget(key, "pid") for key in redis.smembers("rq:workers")) if pid]
    assert len(pids) == 2  # the demo's workers; the killed ones have no hash left
    for pid in pids:
        os.kill(pid, signal.SIGTERM)  # the demo's workers: a clean, warm shutdown
    expected = {("RQAllWorkersGone", ""), ("RQQueueWithoutWorkers", "high"), ("RQQueueWithoutWorkers", "default"),
                ("RQQueueWithoutWorkers", "low")}
    wait_for(lambda: expected <= demo.firing(), timeout=40, interval=0.5, what=f"alerts {expected} firing")


def test_redis_going_away_fires_redis_unreachable(demo, scenario):
    redis = Redis(port=demo.redis_port)
    pid = redis.info("server")["process_id"]
    os.kill(pid, signal.SIGTERM)  # the demo's redis-server
    wait_for(lambda: ("RQRedisUnreachable", "") in demo.firing(), timeout=30, interval=0.5,
             what="RQRedisUnreachable firing")
    # Without Redis the worker series are gone: that is not reported as all workers gone.
    wait_for(lambda: ("RQAllWorkersGone", "") not in demo.firing(), timeout=10, interval=0.5,
             what="RQAllWorkersGone resolved")


def test_ctrl_c_stops_everything_the_demo_started(demo):
    ports = (demo.redis_port, demo.exporter_port, demo.prometheus_port)
    assert demo.stop() == 0, demo.output()
    assert "demo: stopped" in demo.output()
    import socket

    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
