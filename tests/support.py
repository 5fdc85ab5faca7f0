"""Real parts for the tests: redis-server processes, RQ workers, the exporter, scrapes.

Nothing here is a mock: servers and workers are real processes on loopback ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """The tool's path; a missing tool skips locally and fails in CI (where make test installs it)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (make test installs it: scripts/system-deps.sh)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM unless told), then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A real redis-server on a free loopback port, in its own temporary directory."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.binary = require_tool("redis-server")
        self.port = port or free_port()
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="rq-exporter-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._pings, what=f"redis-server on {self.port}")
        return self

    def _pings(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def client(self, **options) -> redis.Redis:
        return redis.Redis(port=self.port, **options)

    def stop(self) -> None:
        if self.process:
            stop_process(self.process, 5)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def worker_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


class RQWorker:
    """A real `rq worker` process (same Python, so the same RQ version as the test)."""

    def __init__(self, url: str, *queues: str, burst: bool = False, name: str | None = None,
                 with_scheduler: bool = False, env: dict | None = None, extra_args: tuple[str, ...] = ()) -> None:
        args = [sys.executable, "-m", "rq.cli", "worker", "--url", url, "--logging_level", "WARNING", *extra_args]
        if burst:
            args.append("--burst")
        if name:
            args += ["--name", name]
        if with_scheduler:
            args.append("--with-scheduler")
        args += list(queues or ("default",))
        self.name = name
        self.process = subprocess.Popen(args, env=worker_env(env), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the worker leaves no trace of its exit, as in a crash or OOM kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, 15)


class Exporter:
    """The real exporter (`python -m rq_exporter`) as a subprocess on a free port."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.port = free_port()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rq_exporter", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wait_for(self._healthy, what="exporter /healthz")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited {self.process.returncode}: {self.process.stderr.read()}")
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def scrape(self, timeout: float = 15) -> Samples:
        return scrape(self.base + "/metrics", timeout)

    def stop(self) -> str:
        """SIGTERM, wait for a clean exit; returns what it logged."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        return self.process.stderr.read()


class Samples(dict):
    """{(name, frozenset(labels.items())): value} with helpers for the assertions."""

    def value(self, name: str, **labels: str) -> float:
        return self[(name, frozenset(labels.items()))]

    def get_value(self, name: str, default=None, **labels: str):
        return self.get((name, frozenset(labels.items())), default)

    def series(self, name: str) -> dict[frozenset, float]:
        return {labels: v for (n, labels), v in self.items() if n == name}

    def names(self) -> set[str]:
        return {name for name, _ in self}


def parse_samples(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(url: str, timeout: float = 15) -> Samples:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return parse_samples(response.read().decode())


@contextmanager
def running(*things) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            thing.stop()
