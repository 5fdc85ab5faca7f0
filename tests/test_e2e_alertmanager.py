"""End to end, to a person: `make demo`'s stack (tests/e2e_stack.py's Demo) with the real
Alertmanager on the bundle's alertmanager.yml and the bundle's notification receiver
(demo/receiver.py). Notifications arrive, firing and resolved, with the description rendered and
the runbook link; while Redis cannot be read, the inhibition rule holds back the other RQ alerts,
as Alertmanager's own API shows. The tests run in file order on one stack."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.request

import pytest
import yaml
from e2e_stack import Demo
from redis import Redis
from rq import Queue

from devkit import free_port, wait_for
from support import RQWorker, require_tool

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]

# Windows of the rate/delta alerts long enough that the failures seen before Redis went away keep
# RQJobFailuresGrowing firing while it is gone (range functions still see the earlier samples).
FAILURE_WINDOW = "2m"


class AlertingDemo(Demo):
    def __init__(self, tmp) -> None:
        require_tool("prometheus-alertmanager")
        self.alertmanager_port, self.receiver_port = free_port(), free_port()
        # --alert-for sets Alertmanager's group_wait and group_interval (the rules come from --rules).
        self.extra_args = ("--alertmanager-port", str(self.alertmanager_port),
                           "--receiver-port", str(self.receiver_port), "--alert-for", "1s")
        super().__init__(tmp)

    def adjust(self, config: dict) -> None:
        for alert in config["alerts"].values():
            if "window" in alert:
                alert["window"] = FAILURE_WINDOW

    def get(self, url: str):
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def notifications(self) -> list[dict]:
        """What the receiver got, oldest first."""
        return list(reversed(self.get(f"http://127.0.0.1:{self.receiver_port}/api/notifications")))

    def notified(self, status: str, alertname: str, queue: str = "") -> dict | None:
        return next((n for n in self.notifications() if (n["status"], n["alertname"], n["queue"])
                     == (status, alertname, queue)), None)

    def wait_notified(self, status: str, alertname: str, queue: str = "", timeout: float = 60) -> dict:
        try:
            return wait_for(lambda: self.notified(status, alertname, queue), timeout=timeout, interval=0.5,
                            what=f"a {status} notification of {alertname} {queue}")
        except AssertionError:
            got = [(n["status"], n["alertname"], n["queue"]) for n in self.notifications()]
            raise AssertionError(f"no {status} {alertname} {queue!r}; notified: {got}; firing in Prometheus: "
                                 f"{sorted(self.firing())}\n{self.output()[-3000:]}") from None

    def alertmanager_alerts(self) -> list[dict]:
        return self.get(f"http://127.0.0.1:{self.alertmanager_port}/api/v2/alerts")

    def annotations(self, alertname: str) -> dict:
        rules = yaml.safe_load(self.rules.alerts.read_text())["groups"][0]["rules"]
        (rule,) = [r for r in rules if r["alert"] == alertname]
        return rule["annotations"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    stack = AlertingDemo(tmp_path_factory.mktemp("demo-alerting"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def redis(demo) -> Redis:
    return Redis(port=demo.redis_port)


@pytest.fixture(scope="module")
def returning_worker(demo):
    """A worker for every queue, started by a test once the demo's own are gone."""
    workers: list[RQWorker] = []
    yield lambda: workers.append(RQWorker(f"redis://127.0.0.1:{demo.redis_port}/0", "high", "default", "low",
                                          "orphan", with_scheduler=True))
    for worker in workers:
        worker.stop()


def test_every_link_the_demo_prints_opens(demo):
    (ready,) = [line for line in demo.output().splitlines() if line.startswith("demo: ready.")]
    links = re.findall(r"http://[^\s,;]+", ready)
    assert len(links) == 4, ready  # metrics, Prometheus' alerts page, Alertmanager, the receiver
    for link in links:
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.status == 200, link


def test_a_queue_without_workers_reaches_the_receiver(demo, redis):
    Queue("orphan", connection=redis).enqueue("demo.jobs.process", 0.01)  # no worker listens on it
    note = demo.wait_notified("firing", "RQQueueWithoutWorkers", "orphan")
    assert note["description"] == (f"Queue orphan ({demo.instance}) holds 1 queued jobs and no worker "
                                   f"listens on it.")
    assert note["summary"] == "An RQ queue has jobs and no worker."
    assert note["severity"] == "critical" and note["receiver"] == "console"
    expected = demo.annotations("RQQueueWithoutWorkers")
    assert note["runbook_url"] == expected["runbook_url"]
    assert note["runbook_url"].endswith("docs/runbooks.md#rqqueuewithoutworkers")
    assert note["dashboard_url"].endswith(f"/d/rq-queue?var-job=rq&var-instance={demo.instance}&var-queue=orphan")
    # Printed in the demo's console and listed on the receiver's page.
    assert f"notification [FIRING] RQQueueWithoutWorkers (critical) queue=orphan instance={demo.instance}: " \
           f"An RQ queue has jobs and no worker. {note['description']} runbook: {note['runbook_url']} " \
           f"dashboard: {note['dashboard_url']} (Grafana is not part of make demo: make start-rq-mon runs it)" \
           in demo.output()
    with urllib.request.urlopen(f"http://127.0.0.1:{demo.receiver_port}/", timeout=10) as response:
        page = response.read().decode()
    assert "RQQueueWithoutWorkers" in page and "rqqueuewithoutworkers" in page


def test_every_worker_gone_reaches_the_receiver(demo, redis):
    pids = [int(pid) for pid in (redis.hget(key, "pid") for key in redis.smembers("rq:workers")) if pid]
    assert len(pids) == 2  # the demo's workers
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    note = demo.wait_notified("firing", "RQAllWorkersGone")
    assert note["description"] == (f"Redis behind {demo.instance} has no live RQ worker: no job of any queue "
                                   f"is processed.")
    assert note["runbook_url"] == demo.annotations("RQAllWorkersGone")["runbook_url"]
    assert note["runbook_url"].endswith("#rqallworkersgone")


def test_workers_coming_back_send_resolved_notifications(demo, returning_worker):
    returning_worker()
    for alertname, queue in (("RQAllWorkersGone", ""), ("RQQueueWithoutWorkers", "orphan")):
        note = demo.wait_notified("resolved", alertname, queue)
        assert note["runbook_url"] == demo.annotations(alertname)["runbook_url"]
        assert note["ends_at"] > note["starts_at"]
    assert "notification [RESOLVED] RQAllWorkersGone" in demo.output()


def test_while_redis_is_unreachable_the_other_alerts_are_inhibited(demo, redis):
    high = Queue("high", connection=redis)
    for _ in range(30):  # the returning worker fails them: more than 10 failures in the window
        high.enqueue("demo.jobs.fail")
    demo.wait_notified("firing", "RQJobFailuresGrowing", "high")
    os.kill(redis.info("server")["process_id"], signal.SIGTERM)  # the demo's redis-server
    unreachable = demo.wait_notified("firing", "RQRedisUnreachable")
    assert unreachable["runbook_url"].endswith("#rqredisunreachable")

    def inhibited() -> list[dict]:
        alerts = demo.alertmanager_alerts()
        sources = {a["fingerprint"] for a in alerts if a["labels"]["alertname"] == "RQRedisUnreachable"}
        return [a for a in alerts if a["labels"]["alertname"] == "RQJobFailuresGrowing"
                and a["labels"].get("queue") == "high" and set(a["status"]["inhibitedBy"]) & sources]

    # Still firing in Prometheus (its window holds the failures from before), held back by Alertmanager.
    (held,) = wait_for(inhibited, timeout=30, interval=0.5, what="RQJobFailuresGrowing inhibited")
    assert held["status"]["state"] == "suppressed"
    assert ("RQJobFailuresGrowing", "high") in demo.firing()
    # Nothing the inhibition holds back goes out: no notification, after Redis', of an alert that
    # Alertmanager lists as suppressed.
    suppressed = {(a["labels"]["alertname"], a["labels"].get("queue", "")) for a in demo.alertmanager_alerts()
                  if a["status"]["state"] == "suppressed"}
    notes = demo.notifications()
    after = {(n["alertname"], n["queue"]) for n in notes[notes.index(unreachable) + 1:]}
    assert ("RQJobFailuresGrowing", "high") in suppressed and not after & suppressed, (after, suppressed)


def test_ctrl_c_stops_alertmanager_and_the_receiver_too(demo):
    ports = (demo.redis_port, demo.exporter_port, demo.prometheus_port, demo.alertmanager_port, demo.receiver_port)
    assert demo.stop() == 0, demo.output()
    assert "demo: stopped" in demo.output()
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
