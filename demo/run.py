"""`make demo`: the whole bundle on this machine, without Docker.

Starts a redis-server (from PATH), RQ workers and the demo producer, the exporter, the bundle's
notification receiver (demo/receiver.py, in this process: its lines go to this console),
Alertmanager with the bundled alertmanager.yml when `prometheus-alertmanager` is installed, and
Prometheus with the bundled config and alert rules when `prometheus` is installed.
Ctrl-C (or SIGTERM) stops everything it started, in reverse order.

    python -m demo.run --help      # from the repository root: it uses devkit/ (the demo image does not run it)
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from bundlegen.config import load_config, with_durations
from bundlegen.rules import render as render_alerts
from bundlegen.rules import render_recording
from demo import receiver, schedules
from devkit import RedisServer, WaitTimeout, http_ok, stop_process, wait_for

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "prometheus"
DEMO_QUEUES = ("high", "default", "low")


def worker_queues(index: int, workers: int) -> tuple[str, ...]:
    """The last of two or more workers has "low" to itself, as a dedicated pool would: retries are
    counted per queue only for workers that listen to one queue (README, RQ versions), so the
    dashboards' retry panels show low's; the others share high and default."""
    if workers < 2:
        return DEMO_QUEUES
    return ("low",) if index == workers - 1 else ("high", "default")
RQ_JOB = "rq"  # the scrape job the alert rules select (prometheus/alerts-config.yml)
CONSOLE = "console"  # the receiver of alertmanager.yml that delivers to demo/receiver.py
ALERTMANAGERS = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's
DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")  # a Prometheus duration
# Notifications link a Grafana dashboard (prometheus/alerts-config.yml's dashboard_url); the demo runs
# no Grafana, so its console says where one is.
NO_GRAFANA = " (Grafana is not part of make demo: make start-rq-mon runs it)"


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:port, so that what answers there later is ours."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


DEMO_REDIS_MEMORY = ("--maxmemory", "256mb", "--maxmemory-policy", "noeviction")


def prometheus_config(base: dict, exporter: str, rule_files: list[str], interval: str,
                      alertmanager: str | None = None) -> dict:
    """The bundled prometheus.yml pointed at a local exporter and Alertmanager (none when None),
    with absolute rule paths."""
    config = copy.deepcopy(base)
    config["global"] = {**config.get("global", {}), "scrape_interval": interval, "evaluation_interval": interval}
    config.pop("alerting", None)
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["rule_files"] = rule_files
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == RQ_JOB]
    if len(jobs) != 1:
        raise ValueError(f"prometheus.yml must have one scrape job named {RQ_JOB!r}")
    jobs[0]["static_configs"] = [{"targets": [exporter]}]
    return config


def alertmanager_config(base: dict, receiver_url: str, base_dir: Path, wait: str | None = None) -> dict:
    """The bundled alertmanager.yml delivering to a local receiver, template paths made absolute
    (the config is written elsewhere), and with `wait` (--alert-for) as group_wait and
    group_interval, so that a notification, firing or resolved, follows within that much."""
    config = copy.deepcopy(base)
    receivers = [r for r in config["receivers"] if r["name"] == CONSOLE]
    if len(receivers) != 1 or len(receivers[0].get("webhook_configs", [])) != 1:
        raise ValueError(f"alertmanager.yml must have one receiver {CONSOLE!r} with one webhook")
    receivers[0]["webhook_configs"][0]["url"] = receiver_url
    config["templates"] = [str(base_dir / t) for t in config.get("templates", [])]
    if wait:
        config["route"] = {**config["route"], "group_wait": wait, "group_interval": wait, "repeat_interval": "1h"}
    return config


def bundle_rules(alert_for: str) -> str:
    """The bundled alert rules (prometheus/alerts-config.yml) with every `for` set to alert_for."""
    return render_alerts(with_durations(load_config(), for_=alert_for))


def bundle_rule_files(alert_for: str, directory: Path) -> list[str]:
    """The bundled recording rules and the alert rules with every `for` set to alert_for, written to
    `directory` (the alerts read the recorded series: both are loaded)."""
    recording = directory / "rq-recording.yml"
    recording.write_text(render_recording(load_config()))
    alerts = directory / "rq-alerts.yml"
    alerts.write_text(bundle_rules(alert_for))
    return [str(recording), str(alerts)]


def duration(text: str) -> str:
    if not DURATION.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a Prometheus duration (such as 10s, 1m30s): {text!r}")
    return text


class Stack:
    """The processes of the demo; stop() ends them newest first."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.redis: RedisServer | None = None
        self.gone: set[str] = set()
        self.running = False
        self.receiver: receiver.ThreadingHTTPServer | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="rq-demo-"))
        self.redis_url = f"redis://127.0.0.1:{args.redis_port}/0"
        self.prometheus_url: str | None = None

    def alerts_page(self) -> str:
        """The alerts page of the Prometheus running: /alerts in Prometheus 3 and upstream 2.x builds;
        Debian's 2.x ships without the React UI, where only /classic/alerts answers."""
        assert self.prometheus_url
        for path in ("/alerts", "/classic/alerts"):
            if http_ok(self.prometheus_url + path):
                return self.prometheus_url + path
        return self.prometheus_url

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        # A session of its own: the terminal's Ctrl-C reaches only this script, which then
        # stops the others in order (workers before the Redis they use).
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - the child writes it for its whole life
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.processes.append((name, process))
        return process

    def check_alive(self) -> None:
        """Raises when a process died while starting, or the exporter or Prometheus died later.
        Redis, the workers, the producer and the schedulers may go once running: stopping a worker,
        a scheduler or Redis to watch the alerts fire is part of the demo."""
        for name, process in self.processes:
            if process.poll() is None:
                continue
            if self.running and name.startswith(("redis", "worker", "producer", "rq-cron", "rqscheduler")):
                if name not in self.gone:
                    self.gone.add(name)
                    print(f"demo: {name} exited with {process.returncode}", file=sys.stderr, flush=True)
                continue
            log = (self.tmp / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"demo: {name} exited with {process.returncode}:\n{log}")

    def start(self) -> None:
        a = self.args
        if not shutil.which("redis-server"):
            raise RuntimeError("demo: redis-server is not on PATH (apt-get install redis-server)")
        ports = {"--redis-port": a.redis_port, "--exporter-port": a.exporter_port}
        if not a.no_prometheus:
            ports["--prometheus-port"] = a.prometheus_port
        if not a.no_alertmanager:
            ports |= {"--alertmanager-port": a.alertmanager_port, "--receiver-port": a.receiver_port}
        taken = [f"{port} ({flag})" for flag, port in ports.items() if not port_free(port)]
        if taken:
            raise RuntimeError(f"demo: another process listens on {', '.join(taken)}: stop it or pick "
                               "another port with that option")
        # A session of its own (as spawn() gives the others): stopped after the workers using it.
        # The memory settings RQ wants (README, The Redis under RQ): a limit, and no eviction of its keys.
        self.redis = RedisServer(*DEMO_REDIS_MEMORY, port=a.redis_port, log=self.tmp / "redis.log", new_session=True)
        self.redis.start()
        assert self.redis.process is not None
        self.processes.append(("redis", self.redis.process))
        client = self.redis.client(socket_timeout=1)

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        for i in range(a.workers):
            self.spawn(f"worker-{i + 1}", [sys.executable, "-m", "rq.cli", "worker", "--url", self.redis_url,
                                           "--with-scheduler", "--logging_level", "WARNING",
                                           *worker_queues(i, a.workers)], env)
        self.spawn("producer", [sys.executable, "-m", "demo.producer", "--redis-url", self.redis_url,
                                "--rate", str(a.rate)], env)
        if not a.no_schedules:
            # `rq cron` and rqscheduler with a few jobs: the RQ / Schedules dashboard has something to show.
            for name, argv in schedules.processes(self.redis_url):
                self.spawn(name, argv, env)
            schedules.seed(client)
        self.spawn("exporter", [sys.executable, "-m", "rq_exporter_ng", "--redis-url", self.redis_url,
                                "--host", "127.0.0.1", "--port", str(a.exporter_port)], env)
        wait_for(lambda: self._up(f"http://127.0.0.1:{a.exporter_port}/healthz"), 20, 0.1, "the exporter")
        wait_for(lambda: client.scard("rq:workers") >= a.workers or self.check_alive(), 30, 0.1, "the RQ workers")

        alertmanager_address = self._start_alertmanager()
        prometheus = shutil.which("prometheus")
        if prometheus and not a.no_prometheus:
            base = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
            rules = [str(Path(r).resolve()) for r in a.rules] or [str(PROMETHEUS_DIR / "rules" / "*.yml")]
            if a.alert_for and not a.rules:
                rules = bundle_rule_files(a.alert_for, self.tmp)
            config = prometheus_config(base, f"127.0.0.1:{a.exporter_port}", rules, a.scrape_interval,
                                       alertmanager_address)
            config_file = self.tmp / "prometheus.yml"
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            self.spawn("prometheus", [prometheus, f"--config.file={config_file}",
                                      f"--storage.tsdb.path={self.tmp / 'prometheus-data'}",
                                      f"--web.listen-address=127.0.0.1:{a.prometheus_port}",
                                      "--enable-feature=exemplar-storage"])
            wait_for(lambda: self._up(f"http://127.0.0.1:{a.prometheus_port}/-/ready"), 30, 0.1, "Prometheus")
            self.prometheus_url = f"http://127.0.0.1:{a.prometheus_port}"
        elif not a.no_prometheus:
            print("demo: prometheus is not installed: running without it (apt-get install prometheus)",
                  file=sys.stderr)
        self.running = True

    def _start_alertmanager(self) -> str | None:
        """The receiver (in this process) and Alertmanager delivering to it; Alertmanager's address."""
        a = self.args
        if a.no_alertmanager:
            return None
        binary = next(filter(None, map(shutil.which, ALERTMANAGERS)), None)
        if not binary:
            print("demo: prometheus-alertmanager is not installed: running without it and the receiver "
                  "(apt-get install prometheus-alertmanager)", file=sys.stderr)
            return None
        inbox = receiver.Inbox(on_line=lambda text: print(
            f"notification {text}{NO_GRAFANA if ' dashboard: ' in text else ''}", flush=True))
        self.receiver = receiver.serve("127.0.0.1", a.receiver_port, inbox)
        base = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.yml").read_text())
        config = alertmanager_config(base, f"http://127.0.0.1:{a.receiver_port}/", PROMETHEUS_DIR, a.alert_for)
        config_file = self.tmp / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        address = f"127.0.0.1:{a.alertmanager_port}"
        # An empty cluster address turns off the gossip port (9094) a single Alertmanager does not need.
        self.spawn("alertmanager", [binary, f"--config.file={config_file}", f"--storage.path={self.tmp / 'am-data'}",
                                    f"--web.listen-address={address}", "--cluster.listen-address="])
        wait_for(lambda: self._up(f"http://{address}/-/ready"), 30, 0.1, "Alertmanager")
        return address

    def _up(self, url: str) -> bool:
        self.check_alive()
        return http_ok(url)

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            stop_process(process, 15)
        self.processes.clear()
        if self.receiver:
            self.receiver.shutdown()
            self.receiver.server_close()
        if self.redis:
            self.redis.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run Redis, RQ workers, a job producer, the exporter, "
                                     "Prometheus, Alertmanager and a notification receiver locally; "
                                     "Ctrl-C stops them all.")
    parser.add_argument("--redis-port", type=int, default=6390, help="redis-server port (default 6390, so a "
                        "Redis already on 6379 is left alone)")
    parser.add_argument("--exporter-port", type=int, default=9726)
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--workers", type=int, default=2,
                        help="RQ workers (the last on low alone, the others on high and default)")
    parser.add_argument("--rate", type=float, default=2.0, help="jobs the producer enqueues per second")
    parser.add_argument("--scrape-interval", default="5s", help="Prometheus scrape and rule evaluation interval")
    parser.add_argument("--rules", action="append", default=[],
                        help="rule file(s) for Prometheus (default prometheus/rules/*.yml: the recording "
                        "rules and the alerts, which read them)")
    parser.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    parser.add_argument("--no-schedules", action="store_true",
                        help="do not start `rq cron` and rqscheduler (nor add their demo jobs)")
    parser.add_argument("--alertmanager-port", type=int, default=9093)
    parser.add_argument("--receiver-port", type=int, default=9095,
                        help="the notification receiver's port (its page lists every notification)")
    parser.add_argument("--no-alertmanager", action="store_true",
                        help="do not start Alertmanager and the notification receiver")
    parser.add_argument("--alert-for", type=duration, default=None, metavar="DURATION",
                        help="set every bundled rule's `for` (not those of --rules files) and Alertmanager's "
                        "group_wait and group_interval to DURATION (such as 10s), to see alerts and their "
                        "notifications within a minute or two")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stack = Stack(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stack.start()
        print(f"demo: ready. Redis {stack.redis_url}, metrics http://127.0.0.1:{args.exporter_port}/metrics"
              + (f", Prometheus {stack.alerts_page()}" if stack.prometheus_url else "")
              + (f", Alertmanager http://127.0.0.1:{args.alertmanager_port}, notifications "
                 f"http://127.0.0.1:{args.receiver_port}/" if stack.receiver else "")
              + f"; logs in {stack.tmp}. Ctrl-C stops it all.", flush=True)
        while not stop.wait(1):
            stack.check_alive()
    except (RuntimeError, WaitTimeout) as error:
        message = str(error)
        print(message if message.startswith("demo:") else f"demo: {message}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print("demo: stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
