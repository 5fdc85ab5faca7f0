"""End to end: RQJobRunningTooLong fires live. A real RQ worker runs a job that does not end, the
real exporter reads Redis, and a real Prometheus with the generated rules (the bundled
prometheus.yml, as the demo points it at a local exporter) scrapes it every second. The rule's
threshold is lowered to 3 s and its `for` to 2 s through the rule generator, as
tests/test_e2e_bundle.py does for the others; a queue whose jobs end at once stays silent, and the
alert resolves once the job ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import jobs
import pytest
import yaml
from bundle import PROMETHEUS, prometheus_api, rule_generator
from rq import Queue

from demo.run import prometheus_config
from devkit import free_port, http_ok, stop_process, wait_for
from support import Exporter, RedisServer, RQWorker, kill_if_alive, require_tool

pytestmark = [pytest.mark.workers, pytest.mark.promtool, pytest.mark.slow]

THRESHOLD = 3  # seconds a job may run before the alert (bundled: 3600)


def alerts(port: int) -> list[dict]:
    return prometheus_api(port, "alerts")["alerts"]


def query(port: int, expr: str) -> list[dict]:
    return prometheus_api(port, "query", query=expr)["result"]


def running_too_long(port: int, state: str = "firing") -> set[str]:
    return {a["labels"]["queue"] for a in alerts(port)
            if a["labels"]["alertname"] == "RQJobRunningTooLong" and a["state"] == state}


def test_a_job_running_too_long_fires_the_alert_live(tmp_path):
    prometheus = require_tool("prometheus")
    gen = rule_generator()
    config = gen.with_durations(gen.load_config(), for_="2s", window="20s")
    config["alerts"]["RQJobRunningTooLong"]["max_run_seconds"] = THRESHOLD
    rules = tmp_path / "rq-alerts.yml"
    rules.write_text(gen.render(config))

    redis = RedisServer().start()
    workers: list[RQWorker] = []
    exporter = server = horse = None
    try:
        conn = redis.client()
        pid_file = tmp_path / "horse.pid"
        Queue("long", connection=conn).enqueue(jobs.pid_then_sleep, str(pid_file), 600, job_timeout=900)
        quick = Queue("quick", connection=conn)
        workers += [RQWorker(redis.url, "long", name="w-long"), RQWorker(redis.url, "quick", name="w-quick")]
        exporter = Exporter("--redis-url", redis.url)
        port = free_port()
        base = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(
            prometheus_config(base, f"127.0.0.1:{exporter.port}", [str(rules)], "1s")))
        server = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60, interval=0.2, what="Prometheus")
        wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the long job to start")
        horse = int(pid_file.read_text())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "long" not in running_too_long(port):
            quick.enqueue(jobs.sleep_for, 0)  # jobs of the other queue start and end all along
            time.sleep(0.5)
        assert running_too_long(port) == {"long"}, alerts(port)
        value = float(query(port, 'rq_queue_longest_running_job_seconds{queue="long"}')[0]["value"][1])
        assert value > THRESHOLD
        assert conn.zcard("rq:finished:quick") > 0  # the silent queue did run jobs

        os.kill(horse, signal.SIGKILL)  # the job ends (failed): the alert resolves
        wait_for(lambda: not running_too_long(port) and not running_too_long(port, "pending"), timeout=30,
                 interval=0.5, what="RQJobRunningTooLong resolved")
    finally:
        if server is not None:
            stop_process(server, 15)
        if exporter is not None:
            exporter.stop()
        for worker in workers:
            worker.kill()
        kill_if_alive(horse)
        redis.cleanup()
