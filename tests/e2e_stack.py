"""The end-to-end stack every e2e test builds: real processes, the bundled alert rules with short
`for` durations and windows, and a real Prometheus scraping the real exporter every second.

Two ways to build it, one API to query it (``PrometheusApi``):

- ``Stack``: redis-server, the exporter and Prometheus, started here; the RQ workers and other
  processes a test needs (``worker``, ``spawn``) stop with it;
- ``Demo``: ``make demo``'s stack (demo/run.py: redis-server, RQ workers, the producer, the
  schedulers, the exporter, Prometheus, and with ``alerting`` Alertmanager and the notification
  receiver), for the tests of the demo and the bundle as users run them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from bundle import PROMETHEUS, has_data, prometheus_api, rule_generator
from redis import Redis

from demo.run import prometheus_config
from devkit import free_port, http_ok, stop_process, wait_for
from support import ROOT, Exporter, RedisServer, RQWorker, require_tool, worker_env

RuleChanges = Callable[[dict], object]  # changes the rules' config (prometheus/alerts-config.yml) in place
# The service levels' windows in seconds: 14.4x over 60 s and 30 s pages, and so on. The short
# windows hold the demo scenario's burst of failures for as long as the other alerts need to fire.
SLO_WINDOWS = {"5m": "30s", "30m": "45s", "1h": "60s", "6h": "90s", "3d": "120s", "30d": "180s"}


@dataclass(frozen=True)
class ShortRules:
    """The bundled rules with `for` 2 s, 20 s windows and the SLO windows above (the period's rules
    every 2 s), written to files; ``config`` is what they were rendered from (the dashboards of this
    config read what these rules record)."""

    alerts: Path
    recording: Path
    config: dict

    @property
    def files(self) -> list[Path]:
        return [self.recording, self.alerts]


def short_rules(tmp: Path, change: RuleChanges | None = None) -> ShortRules:
    """The bundled rules, shortened (ShortRules) and changed by ``change``, written to tmp."""
    gen = rule_generator()
    config = gen.with_durations(gen.load_config(), for_="2s", window="20s", slo_windows=SLO_WINDOWS,
                                slo_interval="2s")
    if change is not None:
        change(config)
    alerts, recording = tmp / "rq-alerts.yml", tmp / "rq-recording.yml"
    alerts.write_text(gen.render(config))
    recording.write_text(gen.render_recording(config))
    return ShortRules(alerts, recording, config)


class PrometheusApi:
    """Queries of the stack's Prometheus."""

    prometheus_port: int
    started: float  # when the stack started: range queries look back to here

    def api(self, path: str, **params: str) -> dict:
        return prometheus_api(self.prometheus_port, path, **params)

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The query's first value; None when it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def has_data(self, expr: str) -> bool:
        """Some series with a finite value since the stack started."""
        return has_data(self.prometheus_port, expr, self.started)

    def alerts(self, state: str = "firing", labels: tuple[str, ...] = ("name", "queue")) -> set[tuple[str, str]]:
        """(alert name, the value of its first label of ``labels`` or "") of the alerts in ``state``."""
        found = set()
        for alert in self.api("alerts")["alerts"]:
            if alert["state"] == state:
                named = alert["labels"]
                found.add((named["alertname"], next((named[k] for k in labels if k in named), "")))
        return found

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, queue) of the firing alerts."""
        return self.alerts("firing", ("queue",))


def start_prometheus(tmp: Path, exporters: list[str], rules: ShortRules) -> tuple[int, subprocess.Popen]:
    """A real Prometheus on the bundled prometheus.yml, as the demo points it at local exporters
    (host:port each, one scrape job), scraping every second; (its port, its process) once it is ready."""
    prometheus = require_tool("prometheus")
    base = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    settings = prometheus_config(base, exporters[0], [str(f) for f in rules.files], "1s")
    (job,) = [job for job in settings["scrape_configs"] if job["job_name"] == "rq"]
    job["static_configs"] = [{"targets": exporters}]
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump(settings))
    port = free_port()
    process = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), timeout=60, interval=0.2, what="Prometheus")
    except BaseException:
        stop_process(process, 15)
        raise
    return port, process


class Stack(PrometheusApi):
    """redis-server, the exporter and Prometheus with the short rules; RQ workers and other
    processes as the test starts them."""

    def __init__(self, tmp: Path, rules: RuleChanges | None = None) -> None:
        require_tool("prometheus")
        self.started = time.time()
        self.processes: list[subprocess.Popen] = []
        self.workers: list[RQWorker] = []
        self.redis = RedisServer().start()
        self.url = self.redis.url
        self.conn = Redis(port=self.redis.port)
        self.exporter = Exporter("--redis-url", self.url)
        try:
            self.prometheus_port, self.prometheus = start_prometheus(
                tmp, [f"127.0.0.1:{self.exporter.port}"], short_rules(tmp, rules))
        except BaseException:
            self.exporter.stop()
            self.redis.cleanup()
            raise

    def worker(self, *queues: str, name: str) -> RQWorker:
        """A real `rq worker` on ``queues``, killed (SIGKILL) when the stack stops."""
        self.workers.append(RQWorker(self.url, *queues, name=name))
        return self.workers[-1]

    def spawn(self, log: Path, argv: list[str]) -> subprocess.Popen:
        """Another process against this Redis (`rq cron`, `rqscheduler`), killed when the stack stops."""
        with open(log, "wb") as out:
            self.processes.append(subprocess.Popen(argv, env=worker_env(), stdout=out, stderr=subprocess.STDOUT))
        return self.processes[-1]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for worker in self.workers:
            worker.kill()
        stop_process(self.prometheus, 20)
        self.exporter.stop()
        self.redis.cleanup()


class Demo(PrometheusApi):
    """``make demo``'s stack (demo/run.py) with the short rules, Alertmanager left out unless the
    arguments ask for it (``extra_args``)."""

    extra_args: tuple[str, ...] = ("--no-alertmanager",)

    def adjust(self, config: dict) -> None:
        """More changes of the rules' config (a subclass's hook)."""

    def __init__(self, tmp: Path) -> None:
        require_tool("redis-server")
        require_tool("prometheus")

        def change(config: dict) -> None:
            # The two thresholds that take minutes to reach, lowered.
            config["alerts"]["RQOldestJobTooOld"]["max_age_seconds"] = 3
            config["alerts"]["RQQueueBacklogGrowing"]["min_growth"] = 3
            self.adjust(config)

        self.rules = short_rules(tmp, change)
        self.config = self.rules.config
        self.redis_port, self.exporter_port, self.prometheus_port = free_port(), free_port(), free_port()
        self.log = tmp / "demo.log"
        self.started = time.time()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "demo.run", "--redis-port", str(self.redis_port),
                 "--exporter-port", str(self.exporter_port), "--prometheus-port", str(self.prometheus_port),
                 "--scrape-interval", "1s", *[arg for f in self.rules.files for arg in ("--rules", str(f))],
                 "--rate", "4", "--workers", "2", *self.extra_args],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(self._ready, timeout=60, interval=0.2, what="the demo stack")
        except BaseException:
            self.stop()
            raise

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.exporter_port}"

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"demo exited {self.process.returncode}:\n{self.output()}")
        return "demo: ready" in self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def firing_alerts(self, alertname: str) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"]
                if a["state"] == "firing" and a["labels"]["alertname"] == alertname]

    def stop(self) -> int:
        stop_process(self.process, 40, signal.SIGINT)  # what Ctrl-C sends
        return self.process.returncode
